"""correctionlib serialisation of the templates and priors (the schema is the single truth).

One ``CorrectionSet`` with the corrections ``jet_response_pdf``, ``rs_prior_mht`` and
``rs_prior_dphi``, and ``jet_phi_resolution`` when the templates have one (:func:`to_correctionset`); written and read as JSON, gzip-compressed for
``.gz`` names (:func:`write_correctionset`, :func:`read_correctionset`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from analysis.errors import CorrectionError, InputFileError
from analysis.io import atomic_output, write_atomic
from analysis.rs.priors import RebalancePriors
from analysis.rs.templates import JetResponseTemplates

#: correctionlib names (the portable file layout, see :func:`to_correctionset`)
CORRECTION_RESPONSE = "jet_response_pdf"
CORRECTION_PRIOR_MHT = "rs_prior_mht"
CORRECTION_PRIOR_DPHI = "rs_prior_dphi"
CORRECTION_PHI_RESOLUTION = "jet_phi_resolution"


def _edges_list(e: np.ndarray) -> list[float]:
    return [float(x) for x in e]


def to_correctionset(templates: JetResponseTemplates, priors: RebalancePriors):
    """Templates and priors as a correctionlib ``CorrectionSet`` (schema v2 pydantic models).

    Layout (all ``MultiBinning`` with C-ordered content, ``flow="clamp"``):

    - ``jet_response_pdf`` (pt [GeV, gen jet], abseta, response) -> pdf [1/response]; the
      smoothed histogram values (bin-center values of the interpolation nodes).
    - ``rs_prior_mht`` (ht [GeV], nb, mht [GeV]) -> pdf [1/GeV]; nb edges 0, 1, ..., n_cat - 1,
      +inf; ht: H_T of the fitted jets (files without the ht input are read as one H_T bin).
    - ``rs_prior_dphi`` (nb, mht [GeV], dphi [rad]) -> pdf [1/rad], DeltaPhi(hard MHT, leading
      jet) given coarse hard-MHT bins.
    - ``jet_phi_resolution`` (pt [GeV, gen jet], abseta) -> sigma(phi_reco - phi_gen) [rad],
      only for templates with a direction resolution (the rebalancing then fits and the
      smearing draws the jet azimuths; files without it keep the directions).

    The smoothing width and the template entries per bin are in the descriptions (JSON); so
    is the number of bins of empty |eta| bins that took the pdfs of a populated neighbour
    (``abseta_borrowed_bins``, only when there are any). The prediction reads the binning from
    the file (``edges``), not from a configuration.
    """
    import correctionlib.schemav2 as cs

    n_cat = priors.n_bjet_categories
    nb_edges: list[float | str] = [float(i) for i in range(n_cat)] + ["inf"]
    meta = {
        "smooth_sigma": templates.smooth_sigma,
        "interpolate_pt": templates.interpolate_pt,
        "entries": templates.entries.tolist(),
    }
    borrowed = templates.borrowed_bins()["abseta"]
    if borrowed:  # (absent when none: files of fully populated templates are unchanged)
        meta["abseta_borrowed_bins"] = borrowed
    resp = cs.Correction(
        name=CORRECTION_RESPONSE,
        description=(
            "R&S jet response pdf P(pT_reco/pT_gen | pT_gen, |eta_gen|) (seed 004 sec. 2.4.1), "
            "normalized per (pt, abseta) bin; softtrack metadata: " + json.dumps(meta)
        ),
        version=1,
        inputs=[
            cs.Variable(name="pt", type="real", description="gen-jet pT (GeV)"),
            cs.Variable(name="abseta", type="real", description="gen-jet |eta|"),
            cs.Variable(name="response", type="real", description="pT_reco / pT_gen"),
        ],
        output=cs.Variable(name="pdf", type="real", description="probability density (1/response)"),
        data=cs.MultiBinning(
            nodetype="multibinning",
            inputs=["pt", "abseta", "response"],
            edges=[_edges_list(templates.pt_edges), _edges_list(templates.eta_edges),
                   _edges_list(templates.response_edges)],
            content=[float(v) for v in templates.pdf.ravel()],
            flow="clamp",
        ),
    )
    nb_var = cs.Variable(name="nb", type="real", description="number of b-tagged jets")
    mht_var = cs.Variable(name="mht", type="real", description="true hard MHT (GeV)")
    prior_m = cs.Correction(
        name=CORRECTION_PRIOR_MHT,
        description=(
            "R&S prior on the true hard MHT per b-jet category (seed 004 sec. 2.4.2); "
            "softtrack metadata: " + json.dumps({"entries": priors.entries.tolist()})
        ),
        version=1,
        inputs=[cs.Variable(name="ht", type="real", description="H_T of the fitted jets (GeV)"),
                nb_var, mht_var],
        output=cs.Variable(name="pdf", type="real", description="probability density (1/GeV)"),
        data=cs.MultiBinning(
            nodetype="multibinning",
            inputs=["ht", "nb", "mht"],
            edges=[_edges_list(priors.ht_edges), nb_edges, _edges_list(priors.mht_edges)],
            content=[float(v) for v in priors.pdf_mht.ravel()],
            flow="clamp",
        ),
    )
    prior_d = cs.Correction(
        name=CORRECTION_PRIOR_DPHI,
        description=(
            "R&S prior on DeltaPhi(true hard MHT, leading jet) given the hard MHT, per b-jet "
            "category (seed 004 sec. 2.4.2, eq. 2.5)"
        ),
        version=1,
        inputs=[nb_var, mht_var,
                cs.Variable(name="dphi", type="real", description="DeltaPhi (rad), [0, pi]")],
        output=cs.Variable(name="pdf", type="real", description="probability density (1/rad)"),
        data=cs.MultiBinning(
            nodetype="multibinning",
            inputs=["nb", "mht", "dphi"],
            edges=[nb_edges, _edges_list(priors.dphi_mht_edges), _edges_list(priors.dphi_edges)],
            content=[float(v) for v in priors.pdf_dphi.ravel()],
            flow="clamp",
        ),
    )
    corrections = [resp, prior_m, prior_d]
    if templates.phi_resolution is not None:
        corrections.append(cs.Correction(
            name=CORRECTION_PHI_RESOLUTION,
            description=("R&S jet azimuth resolution sigma(phi_reco - phi_gen) per (pt, abseta) bin of "
                         "matched isolated jets (docs/physics.md sec. 8, jet directions)"),
            version=1,
            inputs=[cs.Variable(name="pt", type="real", description="gen-jet pT (GeV)"),
                    cs.Variable(name="abseta", type="real", description="gen-jet |eta|")],
            output=cs.Variable(name="sigma", type="real", description="azimuth resolution (rad)"),
            data=cs.MultiBinning(
                nodetype="multibinning", inputs=["pt", "abseta"],
                edges=[_edges_list(templates.pt_edges), _edges_list(templates.eta_edges)],
                content=[float(v) for v in templates.phi_resolution.ravel()], flow="clamp",
            ),
        ))
    return cs.CorrectionSet(
        schema_version=2,
        description="softtrack Rebalance and Smear inputs (docs/physics.md sec. 8, seed 004 sec. 2.4)",
        corrections=corrections,
    )


def _metadata(description: str | None) -> dict:
    if not description or "softtrack metadata: " not in description:
        return {}
    return json.loads(description.split("softtrack metadata: ", 1)[1])


def from_correctionset(cset) -> tuple[JetResponseTemplates, RebalancePriors]:
    """Read templates and priors back from a CorrectionSet model, a JSON string/dict or a path
    (``.json`` or ``.json.gz``) written by :func:`to_correctionset` / :func:`write_correctionset`.
    """
    import correctionlib.schemav2 as cs

    if isinstance(cset, (str, Path)) and not str(cset).lstrip().startswith("{"):
        return read_correctionset(cset)
    if isinstance(cset, str):
        cset = cs.CorrectionSet.model_validate_json(cset)
    elif isinstance(cset, dict):
        cset = cs.CorrectionSet.model_validate(cset)
    by_name = {c.name: c for c in cset.corrections}
    missing = [n for n in (CORRECTION_RESPONSE, CORRECTION_PRIOR_MHT, CORRECTION_PRIOR_DPHI)
               if n not in by_name]
    if missing:
        raise CorrectionError(
            f"R&S correction set lacks {missing} (has {sorted(by_name)}): write it with "
            "analysis.rs.write_correctionset"
        )

    def grid(corr, n_in):
        data = corr.data
        if not isinstance(data, cs.MultiBinning) or len(data.edges) != n_in:
            raise CorrectionError(f"correction '{corr.name}' is not a {n_in}-d MultiBinning")
        edges = []
        for e in data.edges:
            if isinstance(e, cs.UniformBinning):
                edges.append(np.linspace(e.low, e.high, e.n + 1))
            else:
                edges.append(np.array([float(v) for v in e]))
        shape = tuple(e.size - 1 for e in edges)
        return edges, np.asarray(data.content, dtype=np.float64).reshape(shape)

    (pte, ete, rde), pdf = grid(by_name[CORRECTION_RESPONSE], 3)
    meta = _metadata(by_name[CORRECTION_RESPONSE].description)
    entries = np.asarray(meta.get("entries", np.ones(pdf.shape[:2])), dtype=np.float64)
    phi_sigma = None
    if CORRECTION_PHI_RESOLUTION in by_name:
        (spe, sete), phi_sigma = grid(by_name[CORRECTION_PHI_RESOLUTION], 2)
        if not (np.array_equal(spe, pte) and np.array_equal(sete, ete)):
            raise CorrectionError(f"'{CORRECTION_PHI_RESOLUTION}' is not binned as '{CORRECTION_RESPONSE}' "
                                  "(pt, abseta): write the file with analysis.rs.write_correctionset")
    templates = JetResponseTemplates(pte, ete, rde, pdf, entries,
                                     float(meta.get("smooth_sigma", 0.0)),
                                     bool(meta.get("interpolate_pt", True)), phi_sigma)
    cm = by_name[CORRECTION_PRIOR_MHT]
    if isinstance(cm.data, cs.MultiBinning) and len(cm.data.edges) == 2:  # one H_T bin
        (_, me), pm = grid(cm, 2)
        he = None
    else:
        (he, _, me), pm = grid(cm, 3)
    (_, dme, de), pd = grid(by_name[CORRECTION_PRIOR_DPHI], 3)
    pmeta = _metadata(cm.description)
    pentries = np.asarray(pmeta.get("entries", np.ones(pm.shape[-2])), dtype=np.float64)
    return templates, RebalancePriors(me, pm, dme, de, pd, pentries, he)


def write_correctionset(path: str | Path, templates: JetResponseTemplates,
                        priors: RebalancePriors) -> Path:
    """Write :func:`to_correctionset` as JSON (gzip-compressed if the name ends in ``.gz``)."""
    path = Path(path)
    text = to_correctionset(templates, priors).model_dump_json(exclude_unset=True)
    if path.suffix == ".gz":
        # through a temporary file renamed into place; the gzip header names the target
        with atomic_output(path) as tmp, open(tmp, "wb") as raw, \
                gzip.GzipFile(filename=str(path), fileobj=raw, mode="wb") as fh:
            fh.write(text.encode("utf-8"))
    else:
        write_atomic(path, text)
    return path


def read_correctionset(path: str | Path) -> tuple[JetResponseTemplates, RebalancePriors]:
    """Read a file written by :func:`write_correctionset` into (templates, priors)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"R&S template file '{path}' does not exist: build it first")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt") as fh:
                text = fh.read()
        else:
            text = path.read_text()
    except (OSError, EOFError) as err:
        raise InputFileError(f"cannot read R&S template file '{path}': {err}") from None
    return from_correctionset(text)
