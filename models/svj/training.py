"""Training of the semi-visible-jet networks from the processor's columns (docs/svj.md,
"Networks"): LundNet on the two leading AK8 jets, then the ABCDisCoTEC tagger on the
preselected events with LundNet's ONNX scores, with and without the constraints (the
comparison of the distance correlations), exported with their metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from analysis.svj.config import SVJConfig
from analysis.svj.selection import EVENT_FEATURES
from models.metrics import roc_auc

from .abcdiscotec import (
    ABCDisCoTECTraining,
    FlatOnBackground,
    TrainingData,
    background_knots,
    predict_logits,
    predict_scores,
    train_abcdiscotec,
)
from .export import export_lundnet, export_tagger
from .inference import EventTaggerModel, LundNetModel, flatten_graph
from .lundnet import LundNetTraining, predict, train_lundnet

#: jets per class in LundNet's training (CPU budget; docs/svj.md)
MAX_TRAIN_JETS = 12_000
#: the tagger is trained from each of these seeds and the one that closes best on the
#: validation split is kept: with a few thousand training background events the closure of
#: one training on independent events scatters by about 10% from seed to seed (docs/svj.md)
TAGGER_SEEDS = (1, 2, 3)
#: the (X, Y) boundaries of that choice (flattened scores), in the signal and validation planes
SELECTION_POINTS = ((0.3, 0.3), (0.5, 0.5), (0.7, 0.7), (0.3, 0.7), (0.7, 0.3))


def merged_columns(columns: Mapping[str, list[dict]]) -> dict[str, dict[str, np.ndarray]]:
    """Per dataset, the chunks' columns concatenated."""
    return {d: {k: np.concatenate([c[k] for c in parts]) for k in parts[0]} for d, parts in columns.items() if parts}


def is_signal(meta: Mapping[str, Any]) -> bool:
    return meta.get("process") == "svj"


def signal_point(meta: Mapping[str, Any]) -> tuple[float, float]:
    return float(meta["m_zprime"]), float(meta["r_inv"])


def _in_split(cols: dict, slots: tuple[int, ...]) -> np.ndarray:
    return np.isin(cols["split"], slots)


def jet_inputs(cols: dict, rows: np.ndarray) -> np.ndarray:
    """Flat LundNet inputs of both leading jets of the events ``rows`` (jet-major pairs)."""
    feats = cols["lund_features"][rows]
    mask = cols["lund_mask"][rows]
    n, _, nodes, nf = feats.shape
    return flatten_graph(feats.reshape(2 * n, nodes, nf), mask.reshape(2 * n, nodes))


def lundnet_training_set(cols: dict[str, dict], metas: Mapping[str, Mapping], slots: tuple[int, ...],
                         seed: int, max_jets: int | None = MAX_TRAIN_JETS) -> tuple[np.ndarray, np.ndarray]:
    """Jets of the events with two AK8 jets and the trigger in the split ``slots``: signal jets
    from every signal point, background jets from every background; at most ``max_jets`` per
    class (drawn without replacement)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in (1, 0):
        parts = [jet_inputs(c, np.flatnonzero(_in_split(c, slots))) for d, c in cols.items()
                 if is_signal(metas[d]) == bool(label)]
        x = np.concatenate(parts)
        if max_jets is not None and len(x) > max_jets:
            x = x[rng.choice(len(x), max_jets, replace=False)]
        xs.append(x)
        ys.append(np.full(len(x), float(label)))
    return np.concatenate(xs), np.concatenate(ys)


def lundnet_auc_table(scores: dict[str, np.ndarray], cols: dict[str, dict], metas: Mapping[str, Mapping],
                      slots: tuple[int, ...]) -> dict[str, float]:
    """LundNet's ROC AUC per signal point: its jets against the QCD jets, test split (events with
    two AK8 jets and the trigger), unweighted. ``scores``: per dataset (n_events, 2)."""
    bkg = [scores[d][_in_split(cols[d], slots)].reshape(-1) for d in cols if metas[d].get("process") == "qcd"]
    b = np.concatenate(bkg)
    out = {}
    for d in sorted(cols):
        if is_signal(metas[d]):
            s = scores[d][_in_split(cols[d], slots)].reshape(-1)
            m, r = signal_point(metas[d])
            out[f"{m:g},{r:g}"] = roc_auc(np.concatenate([s, b]), np.concatenate([np.ones(s.size), np.zeros(b.size)]))
    return out


def score_with_lundnet(model: LundNetModel, cols: dict[str, dict]) -> dict[str, np.ndarray]:
    """LundNet's ONNX scores of both leading jets of every event: per dataset (n, 2)."""
    return {d: model(jet_inputs(c, np.arange(len(c["mt"]))))[:, 0].astype(np.float64).reshape(-1, 2)
            for d, c in cols.items()}


def event_data(cols: dict[str, dict], metas: Mapping[str, Mapping], slots: tuple[int, ...]) -> TrainingData:
    """The preselected events of the split ``slots``: features (with the LundNet columns as in
    ``cols``), label, weight (backgrounds: physical; each signal point: scaled to the same total),
    M_T, |DeltaEta|, plane."""
    parts = []
    for d, c in sorted(cols.items()):
        m = c["preselected"] & _in_split(c, slots)
        if not m.any():
            continue
        sig = is_signal(metas[d])
        w = c["weight"][m].astype(np.float64)
        if sig:
            w = w / w.sum()
        parts.append((np.stack([c[f][m] for f in EVENT_FEATURES], axis=1), np.full(m.sum(), float(sig)), w,
                      c["mt"][m], c["deta"][m], c["signal_plane"][m]))
    arrays = [np.concatenate([p[i] for p in parts]) for i in range(6)]
    return TrainingData(*arrays)


def background_dcor(scores: np.ndarray, data: TrainingData) -> dict[str, float]:
    """Distance correlations on the background of ``data`` with the ``dcor`` library
    (unweighted) and with the weighted torch estimator of the training."""
    import dcor
    import torch

    from models.losses import distance_correlation

    b = data.label < 0.5
    x, y = scores[b, 0].astype(np.float64), scores[b, 1].astype(np.float64)
    w = torch.as_tensor(data.weight[b])
    return {
        "dcor_xy": float(dcor.distance_correlation(x, y)),
        "dcor_x_mt": float(dcor.distance_correlation(x, data.mt[b].astype(np.float64))),
        "dcor_y_mt": float(dcor.distance_correlation(y, data.mt[b].astype(np.float64))),
        "weighted_dcorr_xy": float(distance_correlation(torch.as_tensor(x), torch.as_tensor(y), w)),
    }


def closure_chi2(scores: np.ndarray, data: TrainingData, mt_edges, points=SELECTION_POINTS) -> dict[str, Any]:
    """The ABCD non-closure of the background of ``data`` (flattened ``scores``) at each of the
    boundaries ``points``, per plane, and its chi2 sum((delta / sigma)^2) over the points and
    both planes (the tagger's choice among its seeds; the points share events, so this is a
    figure of merit, not a chi2 with a known distribution)."""
    from analysis.svj.abcd import closure, templates

    b = data.label < 0.5
    out: dict[str, Any] = {"chi2": 0.0}
    for plane, pm in (("SP", data.signal_plane > 0.5), ("VP", data.signal_plane < 0.5)):
        m = b & pm
        deltas = []
        for x0, y0 in points:
            c = closure(templates(scores[m, 0], scores[m, 1], data.mt[m], data.weight[m], x0, y0, mt_edges))
            deltas.append((c["total"], c["total_unc"]))
            if np.isfinite(c["total"]) and c["total_unc"] > 0:
                out["chi2"] += (c["total"] / c["total_unc"]) ** 2
            else:
                out["chi2"] = np.inf
        out[plane] = deltas
    return out


def train_tagger_seeds(train: TrainingData, validation: TrainingData, settings: ABCDisCoTECTraining,
                       seeds=TAGGER_SEEDS, log=print) -> tuple[FlatOnBackground, dict[str, Any]]:
    """Train the tagger from each seed, flatten it on the training background and keep the one
    with the smallest validation closure chi2 (:func:`closure_chi2`); returns it and, per
    seed, the validation closure and the training history's last entry."""
    if not seeds:
        raise ValueError("train_tagger_seeds needs at least one seed (--tagger-seeds)")
    best, record = None, {}
    for seed in seeds:
        model, history = train_abcdiscotec(train, replace(settings, seed=int(seed)))
        flat = FlatOnBackground(model, background_knots(predict_logits(model, train.features), train.label,
                                                        train.weight))
        val = closure_chi2(predict_scores(flat, validation.features), validation, settings.mt_edges)
        record[str(seed)] = {"validation": val, "history": history["history"][-1]}
        log(f"tagger seed {seed}: validation closure chi2 {val['chi2']:.1f} (SP "
            + ", ".join(f"{100 * d:+.0f}" for d, _ in val["SP"]) + "; VP "
            + ", ".join(f"{100 * d:+.0f}" for d, _ in val["VP"]) + " %)")
        if best is None or val["chi2"] < record[str(best[0])]["validation"]["chi2"]:
            best = (seed, flat, history)
    seed, flat, history = best
    return flat, {"chosen_seed": int(seed), "seeds": record, "history": history["history"]}


def train_all(output: Mapping[str, Any], out_dir: Path, config: SVJConfig | None = None,
              lund_settings: LundNetTraining | None = None,
              tagger_settings: ABCDisCoTECTraining | None = None, log=print,
              tagger_seeds=TAGGER_SEEDS) -> dict[str, Any]:
    """Train and export LundNet (``out_dir/lundnet.onnx``) and the tagger
    (``out_dir/abcdiscotec.onnx``) from a processor output made with ``lund_columns``; returns
    the metrics (AUC table, distance correlations with and without the constraints)."""
    cfg = config or SVJConfig()
    lund_settings = lund_settings or LundNetTraining()
    tagger_settings = tagger_settings or ABCDisCoTECTraining(mt_edges=tuple(cfg.statistics.mt_edges))
    out_dir = Path(out_dir)
    metas = {d: v for d, v in output["datasets"].items()}
    cols = merged_columns(output["columns"])
    split = cfg.split
    x, y = lundnet_training_set(cols, metas, split.train, lund_settings.seed)
    xv, yv = lundnet_training_set(cols, metas, split.validation, lund_settings.seed + 1, max_jets=4000)
    log(f"LundNet: {int(y.sum())} signal and {int((1 - y).sum())} background jets (train)")
    lundnet, lund_history = train_lundnet(x, y, cfg.lund.max_nodes, lund_settings, xv, yv)
    onnx_check = float(np.abs(predict(lundnet, xv[:2000]) - _onnx_after_export(lundnet, xv[:2000], out_dir, cfg,
                                                                            lund_settings, lund_history)).max())
    model = LundNetModel(out_dir / "lundnet.onnx")
    scores = score_with_lundnet(model, cols)
    for d, s in scores.items():
        cols[d]["lundnet_j0"], cols[d]["lundnet_j1"] = s[:, 0], s[:, 1]
    auc = lundnet_auc_table(scores, cols, metas, split.test)
    log(f"LundNet AUC (test, vs QCD): {auc}; max |ONNX - torch| {onnx_check:.2g}")
    train = event_data(cols, metas, split.train)
    validation = event_data(cols, metas, split.validation)
    test = event_data(cols, metas, split.test)
    log(f"ABCDisCoTEC: {int(train.label.sum())} signal and {int((1 - train.label).sum())} background events (train)")
    tagger, tagger_history = train_tagger_seeds(train, validation, tagger_settings, tagger_seeds, log)
    plain, _ = train_abcdiscotec(train, replace(tagger_settings, constraints=False))
    # both flattened on the training background (monotone: the same ABCD regions)
    raw_with = background_dcor(predict_scores(tagger.scores, test.features), test)
    raw_without = background_dcor(predict_scores(plain, test.features), test)
    plain = FlatOnBackground(plain, background_knots(predict_logits(plain, train.features), train.label, train.weight))
    with_disco = background_dcor(predict_scores(tagger, test.features), test)
    without = background_dcor(predict_scores(plain, test.features), test)
    test_auc = {k: roc_auc(predict_scores(m, test.features)[:, i], test.label > 0.5, test.weight)
                for k, m, i in (("x", tagger, 0), ("y", tagger, 1), ("x_without_disco", plain, 0),
                                ("y_without_disco", plain, 1))}
    metrics = {"test_background_with_constraints": with_disco, "test_background_without_constraints": without,
               "test_background_sigmoid_scores_with_constraints": raw_with,
               "test_background_sigmoid_scores_without_constraints": raw_without,
               "test_auc": test_auc, "history": tagger_history["history"][-3:],
               "tagger_seed": tagger_history["chosen_seed"], "tagger_seeds": tagger_history["seeds"],
               "events": {"train_signal": int(train.label.sum()), "train_background": int((1 - train.label).sum())}}
    chosen = replace(tagger_settings, seed=tagger_history["chosen_seed"]).as_dict()
    export_tagger(tagger, out_dir / "abcdiscotec.onnx", EVENT_FEATURES,
                  config={**chosen, "seeds_tried": [int(x) for x in tagger_seeds]}, metrics=metrics)
    onnx_tagger = float(np.abs(EventTaggerModel(out_dir / "abcdiscotec.onnx")(test.features)
                               - predict_scores(tagger, test.features)).max())
    log(f"ABCDisCoTEC test background dCorr(X, Y) with constraints {with_disco['dcor_xy']:.4f} (sigmoid scores "
        f"{raw_with['dcor_xy']:.4f}), without {without['dcor_xy']:.4f} ({raw_without['dcor_xy']:.4f}); "
        f"max |ONNX - torch| {onnx_tagger:.2g}")
    export_lundnet(lundnet, out_dir / "lundnet.onnx", config={**lund_settings.as_dict(), "max_nodes": cfg.lund.max_nodes},
                   metrics={"auc_vs_qcd_test": auc, "history": lund_history["history"][-3:]})
    metrics["tagger_onnx_vs_torch"] = onnx_tagger
    return {"lundnet_auc": auc, "lundnet_onnx_vs_torch": onnx_check, **metrics}


def _onnx_after_export(lundnet, x, out_dir, cfg, settings, history) -> np.ndarray:
    export_lundnet(lundnet, out_dir / "lundnet.onnx", config={**settings.as_dict(), "max_nodes": cfg.lund.max_nodes},
                   metrics={"history": history["history"][-3:]})
    return LundNetModel(out_dir / "lundnet.onnx")(x)[:, 0]
