"""Classifier training classes of tracks from their matched generator particle.

The five classes of the soft-track classifier (docs/physics.md sec. 4; names and order from
analysis.softtrack.config.TRACK_CLASSES): signal, pv_prompt, pv_secondary, spurious, tau.
"""

from __future__ import annotations

import awkward as ak
import numba as nb
import numpy as np

from analysis.columnar import flat
from analysis.contract import PDG_CHARGINO, PDG_PION, PDG_TAU
from analysis.helix._arrays import _as_flat, _offsets
from analysis.softtrack.config import TRACK_CLASSES

# --- Track classes (docs/physics.md sec. 4; names and order from analysis.softtrack.config) ---
CLASS_SIGNAL = TRACK_CLASSES.index("signal")
CLASS_PV_PROMPT = TRACK_CLASSES.index("pv_prompt")
CLASS_PV_SECONDARY = TRACK_CLASSES.index("pv_secondary")
CLASS_SPURIOUS = TRACK_CLASSES.index("spurious")
CLASS_TAU = TRACK_CLASSES.index("tau")
#: a particle is prompt if produced within this 3D distance of the true PV (cm)
PROMPT_VERTEX_TOLERANCE_CM = 1.0e-3
#: longest mother chain followed when looking for a tau ancestor (guards against cycles)
MAX_ANCESTRY_DEPTH = 1000


@nb.njit(cache=True)
def _class_kernel(trk_gen, t_offsets, pdg, mother, gvx, gvy, gvz, g_offsets, tol):
    n_ev = t_offsets.shape[0] - 1
    out = np.full(trk_gen.shape[0], CLASS_SPURIOUS, dtype=np.int64)
    for ev in range(n_ev):
        g0 = g_offsets[ev]
        ng = g_offsets[ev + 1] - g0
        for k in range(t_offsets[ev], t_offsets[ev + 1]):
            ig = trk_gen[k]
            if ig < 0 or ig >= ng:
                continue
            g = g0 + ig
            im = mother[g]
            if (
                abs(pdg[g]) == PDG_PION
                and 0 <= im < ng
                and abs(pdg[g0 + im]) == PDG_CHARGINO
            ):
                out[k] = CLASS_SIGNAL
                continue
            from_tau = False
            depth = 0
            while 0 <= im < ng and depth < MAX_ANCESTRY_DEPTH:
                if abs(pdg[g0 + im]) == PDG_TAU:
                    from_tau = True
                    break
                im = mother[g0 + im]
                depth += 1
            if from_tau:
                out[k] = CLASS_TAU
                continue
            ddx = gvx[g] - gvx[g0]
            ddy = gvy[g] - gvy[g0]
            ddz = gvz[g] - gvz[g0]
            if np.sqrt(ddx * ddx + ddy * ddy + ddz * ddz) < tol:
                out[k] = CLASS_PV_PROMPT
            else:
                out[k] = CLASS_PV_SECONDARY
    return out


def track_class_labels(
    track_gen_idx: np.ndarray,
    track_offsets: np.ndarray,
    gen_pdg_id: np.ndarray,
    gen_mother_idx: np.ndarray,
    gen_vx: np.ndarray,
    gen_vy: np.ndarray,
    gen_vz: np.ndarray,
    gen_offsets: np.ndarray,
) -> np.ndarray:
    """Classifier training class of each track (index into config.TRACK_CLASSES).

    From the matched generator particle (local index, -1: none): ``signal`` if it is a
    charged pion whose mother is a chargino; ``tau`` if any ancestor is a tau; otherwise
    ``pv_prompt`` if it was produced within 1e-3 cm (3D) of the true primary vertex, the
    production vertex of the event's GenPart[0], else ``pv_secondary``; unmatched tracks are
    ``spurious``. The checks are made in this order. Mother indices are local
    (``GenPart_genPartIdxMother``, -1: none).

    Returns
    -------
    numpy.ndarray of int64, one per track
    """
    tg = np.ascontiguousarray(np.asarray(track_gen_idx, dtype=np.int64))
    pdg = np.ascontiguousarray(np.asarray(gen_pdg_id, dtype=np.int64))
    mother = np.ascontiguousarray(np.asarray(gen_mother_idx, dtype=np.int64))
    vx, vy, vz = _as_flat(gen_vx, gen_vy, gen_vz)
    t_off = _offsets(track_offsets, tg.shape[0], "track_offsets")
    g_off = _offsets(gen_offsets, pdg.shape[0], "gen_offsets")
    if t_off.shape != g_off.shape:
        raise ValueError("track and gen offsets describe different numbers of events")
    return _class_kernel(tg, t_off, pdg, mother, vx, vy, vz, g_off, PROMPT_VERTEX_TOLERANCE_CM)


def track_class_labels_jagged(track_gen_idx: ak.Array, genparts: ak.Array) -> ak.Array:
    """:func:`track_class_labels` for jagged arrays; ``genparts`` needs pdgId,
    genPartIdxMother, vx, vy, vz. Returns jagged int64 class indices."""
    t_counts = ak.to_numpy(ak.num(track_gen_idx, axis=1))
    labels = track_class_labels(
        ak.to_numpy(ak.flatten(track_gen_idx)), t_counts,
        ak.to_numpy(ak.flatten(genparts.pdgId)),
        ak.to_numpy(ak.flatten(genparts.genPartIdxMother)),
        *(flat(genparts[f]) for f in ("vx", "vy", "vz")),
        ak.to_numpy(ak.num(genparts, axis=1)),
    )  # fmt: skip
    return ak.unflatten(labels, t_counts)


# --- background classes of the signal regions ------------------------------------------
#: the signal-region backgrounds by the class of the event's highest-scoring track (thesis
#: sec. 7 and Table 7.3; summary Table 2): PV-associated (tracks of the primary interaction,
#: prompt or secondary, not from a tau decay), spurious (no generator match: fakes *and*
#: pileup tracks, thesis sec. 4.1: "spurious tracks including pileup and fakes") and tau
#: (tracks from tau decays); chargino-pion tracks are "signal"
BACKGROUND_CLASSES: tuple[str, ...] = ("pv", "spurious", "tau")


#: the names of :func:`background_class_codes`, by code
BACKGROUND_CLASS_CODE_NAMES = np.array(["pv", "spurious", "tau", "signal"], dtype=object)


def background_class_codes(labels: np.ndarray, origins: np.ndarray | None) -> np.ndarray:
    """:func:`background_class_names` as small integers (int8), indices into
    :data:`BACKGROUND_CLASS_CODE_NAMES`: cheap to keep for every track of a chunk."""
    from analysis.contract import TRACK_ORIGINS

    labels = np.asarray(labels, np.int64)
    out = np.zeros(labels.size, np.int8)
    unmatched = labels == CLASS_SPURIOUS
    if origins is not None:
        origins = np.asarray(origins, np.int64)
        unmatched |= (origins == TRACK_ORIGINS["pileup"]) | (origins == TRACK_ORIGINS["spurious"])
    out[unmatched] = 1
    out[labels == CLASS_TAU] = 2
    out[labels == CLASS_SIGNAL] = 3
    return out


def background_class_names(labels: np.ndarray, origins: np.ndarray | None) -> np.ndarray:
    """Background class name of each track from its classifier class (:func:`track_class_labels`)
    and its generator origin (analysis.contract.TRACK_ORIGINS codes; None: not stored)."""
    return BACKGROUND_CLASS_CODE_NAMES[background_class_codes(labels, origins)]
