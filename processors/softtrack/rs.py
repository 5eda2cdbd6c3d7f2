"""Rebalance and Smear processors (docs/physics.md sec. 8; seed 004 sec. 2-4; issue 7).

- :class:`RSTemplatesProcessor` (``rs_templates``): from simulated QCD, the response histogram
  of DeltaR < 0.4 matched, isolated gen/reco jets per (pT_gen, |eta_gen|) bin (seed 004
  eqs. 2.3-2.4), including isolated gen jets lost below the reco threshold, and the
  sufficient statistics of the priors on the true hard MHT (by H_T and b-jet count) and on
  DeltaPhi(hard MHT, leading jet) by b-jet count (sec. 2.4.2), nominal and for Poisson
  bootstrap replicas of the template events. All accumulators are plain hist histograms that
  merge exactly; :func:`build_templates` turns them into the kernels' templates and priors.
- :class:`RSPredictionProcessor` (``rs``): rebalance every seed event (sec. 2.5), smear it n
  times with weight 1/n (sec. 2.2), and run the smeared events through the ordinary
  selection (``analysis.softtrack.selection.event_observables`` and ``baseline_steps``) plus the
  seed-004 pre-selection/baseline (sec. 3.2); bootstrap replicas (sec. 2.2, 4 item 1) and the
  response systematics core width up / tail fraction up (sec. 4 item 2). With simulation it
  also fills the same histograms directly from the seed events (the closure reference) and
  the Fig. 2 response of reco and rebalanced jets to their gen jets.

Processors are thin: the physics is in ``analysis.rs`` (the method) and
``analysis.softtrack.rs_selection``. :func:`run_rs` runs either over a fileset with the executors of
``processors.runner``.
"""

from __future__ import annotations

import gzip
import hashlib
import os

import awkward as ak
import hist
import numpy as np

from analysis import rs
from analysis.columnar import offsets_from_counts
from analysis.errors import ConfigError, CorrectionError, InputFileError
from analysis.rs import rs_jet_mask
from analysis.rs.defaults import (
    RS_MAX_REBALANCED_MHT,
    RS_N_BJET_CATEGORIES,
    RS_N_BOOTSTRAP,
    RS_N_SMEAR,
    RS_N_TEMPLATE_REPLICAS,
    RS_PRIOR_DPHI_EDGES,
    RS_PRIOR_DPHI_MHT_EDGES,
    RS_PRIOR_HT_EDGES,
    RS_PRIOR_MHT_EDGES,
    RS_RESPONSE_EDGES,
    RS_SYST_CORE_WIDTH_SCALE,
    RS_SYST_TAIL_FRACTION_SCALE,
    RS_TEMPLATE_ABSETA_EDGES,
    RS_TEMPLATE_BOOTSTRAP_SEED,
    RS_TEMPLATE_PT_EDGES,
)
from analysis.softtrack.config import (
    RS_CLOSURE_BINS,
    RS_FIG2_MHT,
    RS_FIG2_RESPONSE_EDGES,
    RS_PREDICTION_SEED,
    RS_SEED_PROCESSES,
)
from analysis.softtrack.rs_selection import seed004_steps
from analysis.softtrack.selection import baseline_steps, event_observables, noise_filters
from processors import collections as col
from processors.base import FINITE_STEP, Chunk, add_finite_step, cutflow, selection_from_steps
from processors.histograms import CATEGORY_AXES, book

from .histograms import REGION_HISTOGRAMS
from .region import EVENT_FINITE_INPUTS, TRIGGERS, RegionProcessor

#: response variations of seed 004 sec. 4 item 2 (name -> vary_response arguments)
RS_VARIATIONS: dict[str, dict[str, float]] = {
    "nominal": {},
    "coreUp": {"core_width_scale": RS_SYST_CORE_WIDTH_SCALE},
    "tailUp": {"tail_fraction_scale": RS_SYST_TAIL_FRACTION_SCALE},
}
#: regions of the R&S histograms: the docs/physics.md sec. 2 baseline and the seed-004 baseline
RS_REGIONS = ("baseline", "seed004")
#: observables of the standard histograms (processors/histograms.py) filled by R&S
EVENT_OBSERVABLES = ("met", "mht", "ht", "n_jets", "leading_jet_pt", "min_dphi")
#: dataset suffix of the prediction (the direct simulation keeps the dataset name)
PREDICTION_SUFFIX = "_rs"
#: the float branches the R&S processors read: an event with a NaN or infinity in one is
#: excluded and counted (cutflow step "finite_inputs" after the first step)
RS_FINITE_INPUTS: tuple[str, ...] = (*EVENT_FINITE_INPUTS, "GenJet_pt", "GenJet_eta", "GenJet_phi")


def _flat(x) -> np.ndarray:
    return ak.to_numpy(ak.flatten(x)).astype(np.float64)


def _file_id(meta: dict) -> str:
    """Identifier of the input file for the random streams: its base name, so that the result
    does not depend on where the file lies (seed 004 sec. 2.2 reproducibility)."""
    return os.path.basename(str(meta.get("filename", meta.get("dataset", ""))))


def _finite_events(proc: RegionProcessor, events, meta: dict):
    """(the events with finite inputs, their entry numbers in the file, the number excluded
    and their normalization weight); the events unchanged when all are finite."""
    n = len(events)
    full = Chunk(events, meta)
    finite = proc.finite_events(full)
    start = int(meta.get("entrystart", 0))
    if finite.all():
        return events, start + np.arange(n, dtype=np.int64), 0, 0.0, full.notices
    excluded_weight = proc.excluded_weight(full, finite)
    return events[finite], start + np.flatnonzero(finite).astype(np.int64), int((~finite).sum()), \
        excluded_weight, full.notices


def _with_finite_steps(flows: dict, excluded: int, excluded_weight: float) -> dict:
    """Every cutflow of a chunk with the finite-inputs step after its first step (``seed_``
    prefixed after ``seed_all``)."""
    return {key: add_finite_step(flow, excluded, excluded_weight,
                                 step=("seed_" if next(iter(flow), "").startswith("seed_") else "") + FINITE_STEP)
            for key, flow in flows.items()}


def _chunk_record(meta: dict, n: int) -> dict:
    return {"dataset": meta["dataset"], "file": meta.get("filename", ""),
            "entrystart": int(meta.get("entrystart", 0)), "entrystop": int(meta.get("entrystop", n)),
            "events": n}


# =========================================================================================
# Templates
# =========================================================================================
def new_template_histograms(pt_edges=RS_TEMPLATE_PT_EDGES,
                            abseta_edges=RS_TEMPLATE_ABSETA_EDGES) -> dict[str, hist.Hist]:
    """Accumulators of the templates processor (exact merging across chunks), the response
    in the template binning ``pt_edges`` (GeV) x ``abseta_edges`` (the configuration's
    ``rs.template_pt_edges``, ``rs.template_abseta_edges``)."""
    pt = hist.axis.Variable(pt_edges, name="pt", label="gen-jet $p_T$ [GeV]", flow=False)
    eta = hist.axis.Variable(abseta_edges, name="abseta", label=r"gen-jet $|\eta|$", flow=False)
    resp = hist.axis.Variable(RS_RESPONSE_EDGES, name="response", label="$p_T^{reco}/p_T^{gen}$", flow=False)
    nb = hist.axis.Integer(0, RS_N_BJET_CATEGORIES, name="nb", label="b-tagged jets (last: >=)", flow=False)
    ht = hist.axis.Variable(RS_PRIOR_HT_EDGES, name="ht", label="$H_T$ of the R&S jets [GeV]", flow=False)
    mht = hist.axis.Variable(RS_PRIOR_MHT_EDGES, name="mht", label="true hard $H_T^{miss}$ [GeV]",
                             underflow=False, overflow=True)
    mht_c = hist.axis.Variable(RS_PRIOR_DPHI_MHT_EDGES, name="mht", label="true hard $H_T^{miss}$ [GeV]", flow=False)
    dphi = hist.axis.Variable(RS_PRIOR_DPHI_EDGES, name="dphi", label=r"$\Delta\phi(H_T^{miss}, j_1)$", flow=False)
    # replica 0: nominal; 1..n: Poisson(1) bootstrap of the template events (template stat. unc.)
    rep = hist.axis.Integer(0, RS_N_TEMPLATE_REPLICAS + 1, name="replica", flow=False)
    return {
        "response": hist.Hist(rep, pt, eta, resp, storage=hist.storage.Double()),
        # the jet azimuth resolution: sum of weights and of weight x (phi_reco - phi_gen)^2
        "phi_sumw": hist.Hist(rep, pt, eta, storage=hist.storage.Double()),
        "phi_sumw_dphi2": hist.Hist(rep, pt, eta, storage=hist.storage.Double()),
        "prior_sumw": hist.Hist(rep, ht, nb, mht, storage=hist.storage.Double()),
        "prior_sumwx": hist.Hist(rep, ht, nb, mht, storage=hist.storage.Double()),
        "prior_count": hist.Hist(rep, ht, nb, mht, storage=hist.storage.Double()),
        "prior_dphi": hist.Hist(rep, nb, mht_c, dphi, storage=hist.storage.Double()),
    }


class RSTemplatesProcessor(RegionProcessor):
    """Response templates and priors from simulated QCD (seed 004 sec. 2.4; issue 7 item 1).

    Reads ``Jet`` (all reco jets, with ``genJetIdx``) and ``GenJet``. Weights: the normalized
    event weight of the region processors (only shapes are used). Gen jets below the first
    template pT edge are not used. Isolated gen jets without any reco jet enter the response
    below the reco threshold (:func:`analysis.rs.lost_jet_responses`). With
    ``rs.fit_jet_directions`` (default) the azimuth resolution of the matched pairs is
    accumulated (``phi_sumw``, ``phi_sumw_dphi2``) and the prior uses the true jets along the
    gen directions, else along the measured ones (:func:`analysis.rs.prior_jets`), binned in
    the reco H_T. The response is binned in the configuration's
    ``rs.template_pt_edges`` x ``rs.template_abseta_edges``. Every accumulator has a
    ``replica`` axis: 0 nominal, 1..n Poisson bootstrap replicas of the template events
    (counter-based, chunking-independent)."""

    name = "rs_templates"
    stream = "jetht"
    finite_inputs = RS_FINITE_INPUTS

    def accepts(self, metadata: dict) -> bool:
        return (not metadata["is_data"]) and metadata["process"] == "qcd"

    def process(self, events):
        meta = dict(events.metadata)
        dataset = meta["dataset"]
        n_read = len(events)
        events, entry, excluded, excluded_weight, notices = _finite_events(self, events, meta)
        n = len(events)
        if "GenJet" not in events.fields:
            raise InputFileError(f"GenJet missing from {meta.get('filename')}: R&S templates need simulation")
        weight = self.normalization(Chunk(events, meta))
        jets = col.jets(events)
        gen = events.GenJet
        roff = offsets_from_counts(ak.to_numpy(ak.num(jets)))
        goff = offsets_from_counts(ak.to_numpy(ak.num(gen)))
        pairs = rs.select_template_jets(_flat(jets.pt), _flat(jets.eta), _flat(jets.phi), roff,
                                        _flat(gen.pt), _flat(gen.eta), _flat(gen.phi), goff)
        binning = self.config.rs
        fit_dir = binning.fit_jet_directions
        h = new_template_histograms(binning.template_pt_edges, binning.template_abseta_edges)
        if not fit_dir:  # no direction resolution in the templates: the prediction keeps the directions
            del h["phi_sumw"], h["phi_sumw_dphi2"]
        pte = np.asarray(binning.template_pt_edges)
        top_eta = np.nextafter(binning.template_abseta_edges[-1], 0)
        use = pairs["gen_pt"] >= pte[0]
        # gen jets without any reco jet: response below the reco threshold (lost jets)
        lpt, leta, lev = pairs["lost_gen_pt"], pairs["lost_gen_eta"], pairs["lost_event"]
        li, lr, lf = rs.lost_jet_responses(lpt)
        luse = lpt[li] >= pte[0]
        li, lr, lf = li[luse], lr[luse], lf[luse]
        resp_pt = np.r_[pairs["gen_pt"][use], lpt[li]]
        resp_eta = np.r_[np.abs(pairs["gen_eta"][use]), np.abs(leta[li])]
        resp_r = np.r_[pairs["reco_pt"][use] / pairs["gen_pt"][use], lr]
        resp_ev = np.r_[pairs["event"][use], lev[li]]
        resp_f = np.r_[np.ones(int(use.sum())), lf]
        dir_pt = np.clip(pairs["gen_pt"][use], pte[0], np.nextafter(pte[-1], 0))
        dir_eta = np.clip(np.abs(pairs["gen_eta"][use]), 0.0, top_eta)
        dir_d2 = pairs["delta_phi"][use] ** 2
        dir_ev = pairs["event"][use]
        # priors: the true hard MHT, gen pT along the gen directions when the rebalancing fits
        # the directions, else along the measured ones (rs.prior_jets), by reco H_T and reco
        # b tags (what the seeds see)
        if "genJetIdx" not in events.Jet.fields:
            raise InputFileError(f"Jet_genJetIdx missing from {meta.get('filename')}: the R&S prior needs "
                                 "the reco-gen jet association")
        gidx = _flat(events.Jet.genJetIdx)
        ppt, peta, pphi, poff, pht = rs.prior_jets(_flat(jets.pt), _flat(jets.eta), _flat(jets.phi), roff, gidx,
                                                   _flat(gen.pt), _flat(gen.eta), _flat(gen.phi), goff,
                                                   pt_min=self.config.objects.jet_pt_rs,
                                                   directions="gen" if fit_dir else "measured")
        mht, dphi = rs.prior_event_values(ppt, peta, pphi, poff, pt_min=self.config.objects.jet_pt_rs)
        nb = np.minimum(rs.bjet_count(_flat(jets.pt), _flat(jets.eta), _flat(jets.btagDeepB), roff, **_btag(self.config.objects)),
                        RS_N_BJET_CATEGORIES - 1)
        ok = np.isfinite(dphi) & np.isfinite(weight)
        # np.histogram2d closes the last bin on the right; hist does not: move x == edge inside
        dphi_in = np.where(dphi[ok] == RS_PRIOR_DPHI_EDGES[-1], np.nextafter(np.pi, 0), dphi[ok])
        ht_in = np.clip(pht[ok], RS_PRIOR_HT_EDGES[0], np.nextafter(RS_PRIOR_HT_EDGES[-1], 0))
        boot = rs.bootstrap_weights(RS_TEMPLATE_BOOTSTRAP_SEED, _file_id(meta), entry, max(RS_N_TEMPLATE_REPLICAS, 2))
        for k in range(RS_N_TEMPLATE_REPLICAS + 1):
            wk = weight if k == 0 else weight * boot[:, k - 1]
            h["response"].fill(replica=k, pt=np.clip(resp_pt, pte[0], np.nextafter(pte[-1], 0)),
                               abseta=np.clip(resp_eta, 0.0, top_eta), response=resp_r, weight=wk[resp_ev] * resp_f)
            if fit_dir:
                h["phi_sumw"].fill(replica=k, pt=dir_pt, abseta=dir_eta, weight=wk[dir_ev])
                h["phi_sumw_dphi2"].fill(replica=k, pt=dir_pt, abseta=dir_eta, weight=wk[dir_ev] * dir_d2)
            w_ok = wk[ok]
            h["prior_sumw"].fill(replica=k, ht=ht_in, nb=nb[ok], mht=mht[ok], weight=w_ok)
            h["prior_sumwx"].fill(replica=k, ht=ht_in, nb=nb[ok], mht=mht[ok], weight=w_ok * mht[ok])
            h["prior_count"].fill(replica=k, ht=ht_in, nb=nb[ok], mht=mht[ok],
                                  weight=np.ones(int(ok.sum())) if k == 0 else boot[ok, k - 1])
            h["prior_dphi"].fill(replica=k, nb=nb[ok], mht=mht[ok], dphi=dphi_in, weight=w_ok)
        flow = {"events": {"events": n, "weighted": float(weight.sum())},
                   "template_pairs": {"events": int(use.sum()), "weighted": float(weight[pairs["event"][use]].sum())},
                   "template_lost_jets": {"events": int((lpt >= pte[0]).sum()),
                                          "weighted": float(weight[lev[lpt >= pte[0]]].sum())},
                   "prior_events": {"events": int(ok.sum()), "weighted": float(weight[ok].sum())}}
        return {"rs_templates": h, "cutflow": _with_finite_steps({dataset: flow}, excluded, excluded_weight),
                "chunks": [_chunk_record(meta, n_read)], "notices": notices}


def build_templates(acc: dict[str, hist.Hist], replica: int = 0) -> tuple[rs.JetResponseTemplates, rs.RebalancePriors]:
    """Templates and priors from the merged accumulators of :class:`RSTemplatesProcessor`:
    ``replica`` 0 the nominal ones, 1..RS_N_TEMPLATE_REPLICAS the Poisson bootstrap replicas
    of the template sample (for the templates' statistical uncertainty)."""
    n_rep = acc["response"].axes["replica"].size
    if not 0 <= replica < n_rep:
        raise ConfigError(f"template replica {replica} not in the accumulator (0..{n_rep - 1})")
    sel = {"replica": replica}
    response = acc["response"]  # the binning it was filled in (the configuration's)
    phi_sigma = None
    if "phi_sumw" in acc:  # (accumulators of an older templates run have none: directions kept)
        phi_sigma = rs.direction_resolution(acc["phi_sumw"][sel].values(), acc["phi_sumw_dphi2"][sel].values())
    templates = rs.templates_from_histogram(response[sel].values(), response.axes["pt"].edges,
                                            response.axes["abseta"].edges, response.axes["response"].edges,
                                            phi_resolution=phi_sigma)
    priors = rs.priors_from_histograms(
        acc["prior_sumw"][sel].values(flow=True), acc["prior_sumwx"][sel].values(flow=True),
        acc["prior_count"][sel].values(flow=True), acc["prior_dphi"][sel].values(),
    )
    return templates, priors


# =========================================================================================
# Prediction
# =========================================================================================
def new_rs_histograms(n_bootstrap: int) -> dict[str, hist.Hist]:
    """R&S histograms beside the standard ones: per region (search baseline, seed-004 baseline)
    in the closure binning, their bootstrap replicas, the Fig. 2 responses and the counters."""
    region = hist.axis.StrCategory(list(RS_REGIONS), name="region")
    replica = hist.axis.Integer(0, n_bootstrap, name="replica", flow=False)
    out = {}
    for name, edges in RS_CLOSURE_BINS.items():
        ax = hist.axis.Variable(edges, name=name)
        out[f"rs_{name}"] = hist.Hist(CATEGORY_AXES["dataset"](), region, CATEGORY_AXES["systematic"](), ax, storage=hist.storage.Weight())
        out[f"rs_bootstrap_{name}"] = hist.Hist(CATEGORY_AXES["dataset"](), region, replica, ax, storage=hist.storage.Double())
    out["rs_response"] = hist.Hist(
        CATEGORY_AXES["dataset"](), hist.axis.StrCategory(["leading", "subleading"], name="jet"),
        hist.axis.StrCategory(["reco", "rebalanced"], name="kind"),
        hist.axis.Variable(RS_FIG2_RESPONSE_EDGES, name="response", label="$p_T/p_T^{gen}$"),
        storage=hist.storage.Weight(),
    )
    out["rs_counters"] = hist.Hist(CATEGORY_AXES["dataset"](), CATEGORY_AXES["systematic"](),
                                   hist.axis.StrCategory([], name="counter", growth=True),
                                   storage=hist.storage.Double())
    return out


class _SeedJets:
    """Flat R&S jets (pT > 15, |eta| < 5) of the seed events with the fields the selection uses."""

    def __init__(self, jets, pt_min: float):
        mask = _rs_mask(jets, pt_min)
        sel = jets[mask]
        self.counts = ak.to_numpy(ak.num(sel))
        self.offsets = offsets_from_counts(self.counts)
        self.pt, self.eta, self.phi = _flat(sel.pt), _flat(sel.eta), _flat(sel.phi)
        self.mass = _flat(sel.mass) if "mass" in sel.fields else np.zeros_like(self.pt)
        self.btag = _flat(sel.btagDeepB)
        self.jet_id = ak.to_numpy(ak.flatten(sel.jetId)).astype(np.int64)
        self.local = ak.to_numpy(ak.flatten(ak.local_index(jets)[mask])).astype(np.int64)


def _read_templates(path: str) -> bytes:
    if not os.path.isfile(path):
        raise InputFileError(f"R&S template file '{path}' does not exist: build it with python run.py rs-templates")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise InputFileError(f"cannot read R&S template file '{path}': {err.strerror or err}; "
                             "build it with python run.py rs-templates") from None


def _parse_templates(data: bytes, sha256: str, path: str) -> tuple[rs.JetResponseTemplates, rs.RebalancePriors]:
    """Templates and priors from the bytes of ``path`` read on the client, checked against
    their sha256."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ConfigError(f"the R&S templates of '{path}' arrived altered (sha256 {digest[:12]} "
                          f"instead of {sha256[:12]}): rerun the job")
    try:
        text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")
        return rs.from_correctionset(text)
    except (OSError, EOFError, UnicodeDecodeError, ValueError, KeyError, CorrectionError) as err:
        raise ConfigError(f"R&S template file '{path}' cannot be read ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}): build it again with "
                          "python run.py rs-templates") from None


def _rs_mask(jets, pt_min: float):
    return rs_jet_mask(jets.pt, jets.eta, pt_min)


def _btag(cuts) -> dict[str, float]:
    """The b-tag counting cuts of the R&S kernels from the object cuts."""
    return {"pt_min": cuts.jet_pt, "eta_max": cuts.jet_eta, "btag_min": cuts.btag_loose}


def _jets_record(pt, eta, phi, mass, jet_id, btag, offsets) -> ak.Array:
    """Awkward jets (pT-ordered, as event_observables expects) from flat arrays."""
    counts = np.diff(offsets)
    jets = ak.unflatten(ak.zip({"pt": pt, "eta": eta, "phi": phi, "mass": mass, "jetId": jet_id,
                                "btagDeepB": btag}), counts)
    return jets[ak.argsort(jets.pt, axis=1, ascending=False)]


class RSPredictionProcessor(RegionProcessor):
    """R&S QCD prediction from seed events (docs/physics.md sec. 8; seed 004 sec. 2-4; issue 7 item 2).

    Parameters
    ----------
    lumi_fb, scorer, systematics :
        As :class:`processors.base.RegionProcessor` (scorer unused; ``systematics`` fills the
        response variations coreUp and tailUp, each rebalanced and smeared with the varied
        templates, seed 004 sec. 4 item 2).
    rs_templates : str
        correctionlib file of :func:`analysis.rs.write_correctionset`: read here, its bytes
        and their sha256 travel in the pickle (a worker needs no access to the file), checked
        and parsed lazily on each worker.
    rs_seed, rs_n_smear, rs_n_bootstrap :
        Global seed of the smearing/bootstrap streams, smearing iterations (weight 1/n), and
        Poisson bootstrap replicas (>= 2).
    rs_direct : bool
        Also fill the histograms directly from the seed events (dataset name unchanged) and,
        in simulation, the Fig. 2 responses: the closure reference.
    rs_max_rebalanced_mht : float
        Rebalanced events above max(this hard MHT (GeV), the prior's RS_REJECT_PRIOR_QUANTILE
        at the event's H_T) are dropped (seed 004 sec. 2.5).
    rs_template_replicas : sequence of str
        Files of Poisson-bootstrap replicas of the templates (``build_rs_templates`` with
        replicas). Each seed event is also rebalanced and smeared with each of them, with the
        random streams of the nominal prediction, filling the ``rs_<obs>`` histograms with
        systematic ``template_replica<k>`` (k = 1, 2, ...): the yields a pass of its own with
        that replica's templates would give, the events read once. Their spread is the
        templates' statistical uncertainty (rs_closure.add_template_uncertainty).

    Output: ``histograms`` (the standard histograms of processors/histograms.py for the search
    baseline, dataset ``<dataset>_rs`` for the prediction with systematics nominal/coreUp/
    tailUp, ``<dataset>`` for the direct events; plus ``rs_<obs>``, ``rs_bootstrap_<obs>``,
    ``rs_response`` and ``rs_counters``), ``cutflow``, ``chunks``, ``notices``.
    """

    #: systematic name of the k-th template replica's prediction (k >= 1)
    REPLICA = "template_replica{}"

    name = "rs"
    stream = "jetht"
    finite_inputs = RS_FINITE_INPUTS

    def __init__(self, config=None, lumi_fb=None, systematics: bool = True, *, rs_templates=None,
                 rs_seed: int = RS_PREDICTION_SEED, rs_n_smear: int = RS_N_SMEAR,
                 rs_n_bootstrap: int = RS_N_BOOTSTRAP, rs_direct: bool = True,
                 rs_max_rebalanced_mht: float = RS_MAX_REBALANCED_MHT, rs_template_replicas=()):
        super().__init__(config, lumi_fb=lumi_fb, scorer=None, systematics=systematics)
        if rs_templates is None:
            raise ConfigError("the rs processor needs R&S templates: pass --rs-templates FILE "
                              "(made by python run.py rs-templates)")
        if int(rs_n_smear) < 1 or int(rs_n_bootstrap) < 2:
            raise ConfigError(f"need rs_n_smear >= 1 and rs_n_bootstrap >= 2, got {rs_n_smear}, {rs_n_bootstrap}")
        self.rs_templates = str(rs_templates)
        self._templates_bytes = _read_templates(self.rs_templates)
        self.rs_templates_sha256 = hashlib.sha256(self._templates_bytes).hexdigest()
        if isinstance(rs_template_replicas, (str, os.PathLike)):
            raise ConfigError("rs_template_replicas is a list of template files, got one path")
        self.rs_template_replicas = tuple(str(f) for f in rs_template_replicas)
        self._replica_bytes = [_read_templates(f) for f in self.rs_template_replicas]
        self.rs_template_replicas_sha256 = tuple(hashlib.sha256(b).hexdigest() for b in self._replica_bytes)
        self.rs_seed = int(rs_seed)
        self.rs_n_smear = int(rs_n_smear)
        self.rs_n_bootstrap = int(rs_n_bootstrap)
        self.rs_direct = bool(rs_direct)
        self.rs_max_rebalanced_mht = float(rs_max_rebalanced_mht)
        self._inputs = None
        self._replica_inputs = None

    def __getstate__(self):
        state = dict(self.__dict__)
        # the templates travel as bytes + sha256, parsed lazily on the worker
        state["_inputs"] = state["_replica_inputs"] = None
        return state

    def validate(self, fileset) -> None:
        """Parse the templates on the client before any chunk runs (a corrupt file stops the
        run with one message naming it)."""
        self.inputs()
        self.replica_inputs()

    def inputs(self) -> dict[str, tuple[rs.JetResponseTemplates, rs.RebalancePriors]]:
        """Templates and priors per response variation (parsed once per worker from the bytes
        read on the client, after checking their sha256)."""
        if self._inputs is None:
            templates, priors = _parse_templates(self._templates_bytes, self.rs_templates_sha256, self.rs_templates)
            self._inputs = {name: (rs.vary_response(templates, **kw) if kw else templates, priors)
                            for name, kw in RS_VARIATIONS.items()}
        return self._inputs

    def replica_inputs(self) -> list[tuple[rs.JetResponseTemplates, rs.RebalancePriors]]:
        """Templates and priors of each template replica (parsed once per worker)."""
        if self._replica_inputs is None:
            self._replica_inputs = [_parse_templates(b, h, f) for b, h, f in zip(
                self._replica_bytes, self.rs_template_replicas_sha256, self.rs_template_replicas, strict=True)]
        return self._replica_inputs

    def _cuts(self):
        cfg = self.config
        return cfg.objects, cfg.baseline, cfg.hem

    def accepts(self, metadata: dict) -> bool:
        """Seed datasets: simulated QCD (closure) and the jet-HT pseudo-data stream."""
        return metadata["process"] in RS_SEED_PROCESSES

    # -- the chunk --------------------------------------------------------------------------
    def process(self, events):
        meta = dict(events.metadata)
        dataset, era, is_data = meta["dataset"], str(meta["era"]), bool(meta["is_data"])
        n_read = len(events)
        events, entry, excluded, excluded_weight, notices = _finite_events(self, events, meta)
        n = len(events)
        pred = dataset + PREDICTION_SUFFIX
        hists = book(REGION_HISTOGRAMS)
        hists.update(new_rs_histograms(self.rs_n_bootstrap))
        flows: dict[str, dict] = {}
        out = {"histograms": hists, "cutflow": flows, "chunks": [_chunk_record(meta, n_read)], "notices": notices}
        weight = self.normalization(Chunk(events, meta))
        jets = col.jets(events)
        mu, el, ph, ta = col.leptons(events)
        met_pt, met_phi = col.met(events)
        # seed-level steps: noise filters (and, for data seeds, the jet-HT trigger)
        seed_ok = np.ones(n, bool)
        steps = [("all", seed_ok.copy())]
        if "Flag" in events.fields:
            steps.append(("noise_filters", noise_filters(events.Flag, era)))
        trigger = TRIGGERS[self.stream]
        if is_data:
            if "HLT" in events.fields and trigger in events.HLT.fields:
                steps.append(("trigger", ak.to_numpy(events.HLT[trigger])))
            else:
                out["notices"].add(f"{dataset}: seed trigger HLT_{trigger} not in file, not required")
        for _, m in steps:
            seed_ok &= m

        if self.rs_direct:
            o = event_observables(jets, mu, el, ph, ta, met_pt, met_phi, era, *self._cuts())
            self._fill(hists, flows, dataset, "nominal", o, weight, steps, None)

        seeds = _SeedJets(jets, self.config.objects.jet_pt_rs)
        nb = rs.bjet_count(seeds.pt, seeds.eta, seeds.btag, seeds.offsets, **_btag(self.config.objects))
        file_id = _file_id(meta)
        boot = rs.bootstrap_weights(self.rs_seed, file_id, entry, self.rs_n_bootstrap)
        variations = [(s, *self.inputs()[s]) for s in (RS_VARIATIONS if self.systematics else ("nominal",))]
        variations += [(self.REPLICA.format(k), *inputs) for k, inputs in enumerate(self.replica_inputs(), 1)]
        for syst, templates, priors in variations:
            reb = rs.rebalance(seeds.pt, seeds.eta, seeds.phi, seeds.offsets, nb, templates, priors,
                               max_rebalanced_mht=self.rs_max_rebalanced_mht, pt_min=self.config.objects.jet_pt_rs)
            keep = reb.keep & seed_ok
            for key, value in reb.summary.items():
                hists["rs_counters"].fill(dataset=pred, systematic=syst, counter=key, weight=value)
            hists["rs_counters"].fill(dataset=pred, systematic=syst, counter="seed_selected", weight=int(seed_ok.sum()))
            if syst == "nominal" and self.rs_direct and not is_data and "GenJet" in events.fields:
                self._fill_response(events, hists, pred, seeds, reb, jets, mu, el, ph, ta, met_pt, met_phi,
                                    era, weight)
            self._predict(hists, flows, pred, syst, seeds, reb, keep, weight, boot, templates, file_id,
                          entry, (mu, el, ph, ta), met_pt, met_phi, era, steps)
        out["cutflow"] = _with_finite_steps(flows, excluded, excluded_weight)
        return out

    def _predict(self, hists, flows, pred, syst, seeds, reb, keep, weight, boot, templates, file_id, entry,
                 leptons, met_pt, met_phi, era, steps):
        mu, el, ph, ta = leptons
        n_smeared, w_smeared = 0, 0.0
        parts = []
        for batch, w_tot, n_tot in rs.smear_skimmed(
            reb.pt, seeds.eta, reb.phi, seeds.offsets, keep, templates, seed=self.rs_seed,
            file_id=file_id, entry=entry, n_smear=self.rs_n_smear, event_weight=weight,
            mht_pt_min=self.config.objects.jet_pt, mht_eta_max=self.config.objects.jet_eta_wide,
        ):
            n_smeared += n_tot
            w_smeared += w_tot
            parts.append(batch)
        hists["rs_counters"].fill(dataset=pred, systematic=syst, counter="smeared_events", weight=n_smeared)
        if parts:
            b = rs.SmearedBatch(*(np.concatenate([getattr(p, f) for p in parts]) if f != "offsets" else
                                  offsets_from_counts(np.concatenate([np.diff(p.offsets) for p in parts]))
                                  for f in ("pt", "eta", "phi", "source", "offsets", "event_index", "weight")))
        else:
            b = rs.SmearedBatch(*(np.zeros(0) for _ in range(3)), np.zeros(0, np.int64), np.zeros(1, np.int64),
                                np.zeros(0, np.int64), np.zeros(0))
        hists["rs_counters"].fill(dataset=pred, systematic=syst, counter="smeared_skimmed", weight=b.weight.size)
        src = b.source.astype(np.int64)
        sm_jets = _jets_record(b.pt, b.eta, b.phi, seeds.mass[src] * np.divide(
            b.pt, seeds.pt[src], out=np.ones_like(b.pt), where=seeds.pt[src] > 0),
            seeds.jet_id[src], seeds.btag[src], b.offsets)
        ev = b.event_index.astype(np.int64)
        mpt, mphi = rs.met_after_smearing(met_pt[ev], met_phi[ev], seeds.pt[src], seeds.phi[src], b.pt, b.phi,
                                           b.offsets)
        o = event_observables(sm_jets, mu[ev], el[ev], ph[ev], ta[ev], mpt, mphi, era, *self._cuts())
        pre = [(f"seed_{name}", c["events"], c["weighted"])
               for name, c in cutflow(selection_from_steps(steps), weight).items()]
        pre += [("rebalanced_kept", int(keep.sum()), float(weight[keep].sum())),
                ("smeared", n_smeared, w_smeared), ("skim_mht", b.weight.size, float(b.weight.sum()))]
        self._fill(hists, flows if syst == "nominal" else None, pred, syst, o, b.weight, None,
                   boot[ev] if syst == "nominal" else None, pre=pre, standard=syst in RS_VARIATIONS)

    def _fill(self, hists, flows, dataset, syst, o, weight, steps, boot, pre=(), standard=True):
        """Fill the R&S region histograms and (``standard``) the standard histograms of the
        search baseline."""
        n = len(o.met)
        base_mask = np.ones(n, bool)
        if steps is not None:  # direct events: seed-level steps apply event by event
            for _, m in steps:
                base_mask &= m
        cfg = self.config
        regions = {"baseline": baseline_steps(o, 0, cfg.baseline), "seed004": seed004_steps(o)}
        if flows is not None:
            for region, rsteps in regions.items():
                key = dataset if region == "baseline" else f"{dataset}_seed004"
                if steps is not None:  # direct events: the seed-level steps, then the region's
                    flows[key] = cutflow(selection_from_steps(list(steps) + rsteps), weight)
                else:  # smeared events: the seed-level counts recorded before smearing
                    flows[key] = {name: {"events": int(ne), "weighted": float(we)} for name, ne, we in pre}
                    flows[key] |= cutflow(selection_from_steps(rsteps), weight)
        for region, rsteps in regions.items():
            sel = base_mask & np.logical_and.reduce([m for _, m in rsteps])
            w = weight[sel]
            values = {"met": o.met, "mht": o.mht, "ht": o.ht, "n_jets": o.n_jets,
                      "leading_jet_pt": o.leading_jet_pt, "min_dphi": o.min_dphi}
            if region == "baseline" and standard:
                for name in EVENT_OBSERVABLES:
                    hists[name].fill(dataset=dataset, systematic=syst, **{name: values[name][sel]}, weight=w)
            for name in RS_CLOSURE_BINS:
                v = values[name][sel].astype(np.float64)
                hists[f"rs_{name}"].fill(dataset=dataset, region=region, systematic=syst, **{name: v}, weight=w)
                if boot is not None:
                    bw = boot[sel]
                    nb_ = bw.shape[1]
                    hists[f"rs_bootstrap_{name}"].fill(
                        dataset=dataset, region=region, replica=np.tile(np.arange(nb_), v.size),
                        **{name: np.repeat(v, nb_)}, weight=(w[:, None] * bw).ravel())

    def _fill_response(self, events, hists, pred, seeds, reb, jets, mu, el, ph, ta, met_pt, met_phi, era, weight):
        """Seed 004 Fig. 2: response of the leading and subleading R&S jets to their gen jets,
        before and after rebalancing, in seed events with hard MHT > RS_FIG2_MHT and >= 2 jets."""
        if "genJetIdx" not in events.Jet.fields:
            return
        o = event_observables(jets, mu, el, ph, ta, met_pt, met_phi, era, *self._cuts())
        ev_ok = (o.mht > RS_FIG2_MHT) & (o.n_jets >= 2) & (reb.status == rs.STATUS_CONVERGED)
        gidx_all = events.Jet.genJetIdx[_rs_mask(events.Jet, self.config.objects.jet_pt_rs)]
        gidx = ak.to_numpy(ak.flatten(gidx_all)).astype(np.int64)
        gen_pt = events.GenJet.pt
        gcount = ak.to_numpy(ak.num(gen_pt))
        goff = offsets_from_counts(gcount)
        gflat = _flat(gen_pt)
        ev_of_jet = np.repeat(np.arange(len(seeds.counts)), seeds.counts)
        valid = (gidx >= 0) & (gidx < gcount[ev_of_jet])
        gpt = np.where(valid, gflat[np.clip(goff[ev_of_jet] + gidx, 0, max(gflat.size - 1, 0))] if gflat.size else 0.0,
                       np.nan)
        # rank of each jet by reco pT within its event (jets are pT-ordered in NanoAOD, but be safe)
        order = np.lexsort((-seeds.pt, ev_of_jet))
        rank = np.empty(order.size, np.int64)
        rank[order] = np.arange(order.size) - np.repeat(seeds.offsets[:-1], seeds.counts)
        for r, label in ((0, "leading"), (1, "subleading")):
            m = (rank == r) & ev_ok[ev_of_jet] & valid & (gpt > 0)
            w = weight[ev_of_jet[m]]
            hists["rs_response"].fill(dataset=pred, jet=label, kind="reco", response=seeds.pt[m] / gpt[m], weight=w)
            hists["rs_response"].fill(dataset=pred, jet=label, kind="rebalanced", response=reb.pt[m] / gpt[m],
                                      weight=w)

    def postprocess(self, accumulator):
        return accumulator
