"""Primary Lund declusterings of AK8 jets with scikit-hep ``fastjet`` (docs/svj.md, "Lund plane").

The jet's constituents are reclustered with Cambridge/Aachen; the last clustering step is
undone into two branches a (harder, larger p_T) and b, the declustering recorded, and the
procedure repeated on a (SVJ talk, "Supervised SVJ Tagging via LundNet": "recluster w/ C-A,
follow hardest branch only"). Per declustering (Dreyer, Salam, Soyez, JHEP 12 (2018) 064,
eq. 2.1; Dreyer, Qu, arXiv:2012.08526, sec. 2):

    Delta = sqrt((y_a - y_b)^2 + (phi_a - phi_b)^2),  k_t = p_T,b Delta,
    z = p_T,b / (p_T,a + p_T,b),  m = m(a + b),  psi = atan2(y_b - y_a, phi_b - phi_a)

and the graph features ln(1/Delta), ln k_t, ln z, ln m, psi.

Each step is one vectorised fastjet call over every jet (the jets are the "events" of a
multi-event ClusterSequence): the C/A subtree of a branch is the C/A clustering of its
constituents alone (C/A merges the closest pair; a merge inside the branch never involves
particles outside it), so reclustering the harder branch continues the primary sequence.
``tests/test_svj.py`` checks Delta and k_t against fastjet's own
``exclusive_jets_lund_declusterings``.
"""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np

#: the graph features of a declustering, in the order of the padded arrays
LUND_FEATURES: tuple[str, ...] = ("ln_inv_delta", "ln_kt", "ln_z", "ln_m", "psi")
#: floor of m and k_t (GeV) before the logarithm (exactly collinear massless pairs)
LOG_FLOOR = 1e-6


def jet_constituents(pfcands, fatjet_pfcands, event_index: np.ndarray, jet_index: np.ndarray,
                     cand_field: str = "pFCandsIdx", jet_field: str = "jetIdx") -> ak.Array:
    """The constituents (px, py, pz, E) of the AK8 jets (event_index[i], jet_index[i]).

    Parameters
    ----------
    pfcands : per-event PF candidates with pt, eta, phi, mass.
    fatjet_pfcands : per-event cross-references with ``jet_field`` (FatJet index) and
        ``cand_field`` (PFCands index), both local to the event (PFNano).
    event_index, jet_index : int arrays (n_jets,): which jets, in which order.

    Returns
    -------
    ak.Array (n_jets, var) of records px, py, pz, E.
    """
    event_index = np.asarray(event_index, np.int64)
    jet_index = np.asarray(jet_index, np.int64)
    ref_counts = ak.to_numpy(ak.num(fatjet_pfcands[jet_field]))
    ref_event = np.repeat(np.arange(ref_counts.size), ref_counts)
    ref_jet = ak.to_numpy(ak.flatten(fatjet_pfcands[jet_field])).astype(np.int64)
    ref_cand = ak.to_numpy(ak.flatten(fatjet_pfcands[cand_field])).astype(np.int64)
    n_max = int(max(ref_jet.max(initial=0), jet_index.max(initial=0))) + 1
    wanted_key = event_index * n_max + jet_index
    order = np.argsort(wanted_key, kind="stable")
    ref_key = ref_event * n_max + ref_jet
    pos = np.searchsorted(wanted_key[order], ref_key)
    pos = np.clip(pos, 0, max(wanted_key.size - 1, 0))
    hit = (wanted_key.size > 0) & (wanted_key[order][pos] == ref_key) if wanted_key.size else np.zeros(0, bool)
    slot = order[pos[hit]]  # which requested jet each kept reference belongs to
    cand_offsets = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(pfcands.pt)))])
    cand_global = cand_offsets[ref_event[hit]] + ref_cand[hit]
    by_slot = np.argsort(slot, kind="stable")
    cand_global, slot = cand_global[by_slot], slot[by_slot]
    pt = ak.to_numpy(ak.flatten(pfcands.pt)).astype(np.float64)[cand_global]
    eta = ak.to_numpy(ak.flatten(pfcands.eta)).astype(np.float64)[cand_global]
    phi = ak.to_numpy(ak.flatten(pfcands.phi)).astype(np.float64)[cand_global]
    mass = ak.to_numpy(ak.flatten(pfcands.mass)).astype(np.float64)[cand_global]
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    counts = np.bincount(slot, minlength=event_index.size)
    return ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}), counts)


def _kinematics(j):
    px, py, pz, e = (ak.to_numpy(j[c]).astype(np.float64) for c in ("px", "py", "pz", "E"))
    pt = np.hypot(px, py)
    y = 0.5 * np.log(np.maximum(e + pz, 1e-300) / np.maximum(e - pz, 1e-300))
    return px, py, pz, e, pt, y, np.arctan2(py, px)


def _exclusive_two(constituents: ak.Array, radius: float):
    import fastjet

    jetdef = fastjet.JetDefinition(fastjet.cambridge_algorithm, radius)
    with warnings.catch_warnings():
        # fastjet 3.5's Python layer warns for every algorithm (it compares a JetDefinition
        # with the algorithm enum); C/A exclusive jets are well defined
        warnings.filterwarnings("ignore", message="dcut and exclusive jets")
        cs = fastjet.ClusterSequence(constituents, jetdef)
        two = cs.exclusive_jets(2)
        index = cs.exclusive_jets_constituent_index(2)
    return two, index


def primary_declusterings(constituents: ak.Array, radius: float, max_steps: int) -> ak.Array:
    """The first ``max_steps`` primary declusterings of each jet (module docstring).

    Returns
    -------
    ak.Array (n_jets, var) of records delta, kt, z, m, psi and the graph features of
    :data:`LUND_FEATURES`, widest declustering first.
    """
    n_jets = len(constituents)
    current = constituents
    active = np.arange(n_jets)
    rows: list[dict[str, np.ndarray]] = []
    for step in range(max_steps):
        ok = ak.to_numpy(ak.num(current)) >= 2
        current, active = current[ok], active[ok]
        if len(current) == 0:
            break
        two, index = _exclusive_two(current, radius)
        first, second = two[:, 0], two[:, 1]
        _, _, _, _, pt1, y1, phi1 = _kinematics(first)
        _, _, _, _, pt2, y2, phi2 = _kinematics(second)
        first_harder = pt1 >= pt2
        pta, ptb = np.where(first_harder, pt1, pt2), np.where(first_harder, pt2, pt1)
        ya, yb = np.where(first_harder, y1, y2), np.where(first_harder, y2, y1)
        phia, phib = np.where(first_harder, phi1, phi2), np.where(first_harder, phi2, phi1)
        dphi = (phib - phia + np.pi) % (2.0 * np.pi) - np.pi
        dy = yb - ya
        delta = np.hypot(dy, dphi)
        sx, sy, sz, se = (ak.to_numpy(first[c]) + ak.to_numpy(second[c]) for c in ("px", "py", "pz", "E"))
        m = np.sqrt(np.maximum(se**2 - sx**2 - sy**2 - sz**2, 0.0))
        rows.append({"jet": active.copy(), "step": np.full(active.size, step), "delta": delta, "kt": ptb * delta,
                     "z": ptb / (pta + ptb), "m": m, "psi": np.arctan2(dy, dphi)})
        harder_slot = np.where(first_harder, 0, 1)
        harder_index = ak.flatten(index[ak.local_index(index, axis=1) == harder_slot[:, None]], axis=1)
        current = current[harder_index]
    if rows:
        flat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    else:
        flat = {k: np.zeros(0) for k in ("jet", "step", "delta", "kt", "z", "m", "psi")}
    order = np.lexsort((flat["step"], flat["jet"]))
    flat = {k: v[order] for k, v in flat.items()}
    counts = np.bincount(flat["jet"].astype(np.int64), minlength=n_jets)
    fields = {k: flat[k].astype(np.float64) for k in ("delta", "kt", "z", "m", "psi")}
    fields["ln_inv_delta"] = -np.log(fields["delta"])
    fields["ln_kt"] = np.log(np.maximum(fields["kt"], LOG_FLOOR))
    fields["ln_z"] = np.log(fields["z"])
    fields["ln_m"] = np.log(np.maximum(fields["m"], LOG_FLOOR))
    return ak.unflatten(ak.zip(fields), counts)


def padded_graph(declusterings: ak.Array, max_nodes: int, kt_min: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The declusterings as a padded chain graph: features (n_jets, max_nodes, 5) in the order
    of :data:`LUND_FEATURES` and the node mask (n_jets, max_nodes) (1: a node, 0: padding);
    declusterings with k_t < ``kt_min`` are dropped first."""
    d = declusterings[declusterings.kt >= kt_min] if kt_min > 0 else declusterings
    feats = np.zeros((len(d), max_nodes, len(LUND_FEATURES)), np.float32)
    mask = np.zeros((len(d), max_nodes), np.float32)
    padded = ak.pad_none(d, max_nodes, clip=True)
    valid = ak.to_numpy(ak.fill_none(ak.is_none(padded, axis=1), True))
    mask[:] = ~valid
    for i, name in enumerate(LUND_FEATURES):
        feats[:, :, i] = ak.to_numpy(ak.fill_none(padded[name], 0.0))
    return feats, mask
