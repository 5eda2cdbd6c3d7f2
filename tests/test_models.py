"""models/: refiner identity, ONNX export vs torch, inference wrapper errors, losses, metrics,
classifier training on synthetic data (docs/physics.md sec. 4 and 7; thesis Part I and ch. 4)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from analysis.errors import ConfigError, ModelError
from analysis.softtrack.config import (
    CLASSIFIER_DMS,
    ERAS,
    LOGIT_EPSILON,
    REFINER_VARIABLES,
    TRACK_CLASSES,
)
from models import metrics
from models.inference import OnnxModel, load_model, read_metadata
from models.softtrack.data import (
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VAL,
    build_classifier_data,
    split_by_event,
    synthetic_track_table,
)
from models.softtrack.inference import DEFAULT_REFINER, ClassifierModel, RefinerModel, logit

#: agreement required between ONNX Runtime and torch (float32 graphs)
ONNX_TOLERANCE = 1e-5
SMALL_HIDDEN = (32, 32, 32)


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    torch.set_num_threads(1)
    return torch


def _raw_tracks(n: int, seed: int, n_cond: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pt = rng.lognormal(0.0, 0.6, n)
    dxy = 10 ** rng.normal(-1.9, 0.25, n)
    dz = 10 ** rng.normal(-1.7, 0.25, n)
    cond = rng.uniform(0.0, 2.4, (n, n_cond))
    return np.column_stack([pt, dxy, dz, cond]).astype(np.float32)


def _classifier(torch, n_inputs: int, seed: int):
    from models.softtrack.classifier import TrackClassifier

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = TrackClassifier(torch.randn(n_inputs, generator=gen), torch.rand(n_inputs, generator=gen) + 0.5,
                            hidden_layers=SMALL_HIDDEN)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)):
        with torch.no_grad():  # non-trivial statistics, so the folding is really tested
            bn.running_mean.normal_(0.0, 0.5, generator=gen)
            bn.running_var.uniform_(0.5, 2.0, generator=gen)
            bn.weight.uniform_(0.5, 1.5, generator=gen)
            bn.bias.normal_(0.0, 0.3, generator=gen)
    return model.eval()


@pytest.fixture(scope="module")
def exported_classifier(torch, tmp_path_factory):
    from models.softtrack.export import export_classifier

    n_feat = 6
    model = _classifier(torch, n_feat + 1 + len(ERAS), seed=3)
    names = (*[f"f{i}" for i in range(n_feat)], "dm", *[f"era_{e}" for e in ERAS])
    path = tmp_path_factory.mktemp("clf") / "classifier.onnx"
    config = {"model": "classifier", "test": True}
    export_classifier(model, path, names, config=config, metrics={"auc": 0.5})
    return model, path, names, config


def _refiner(torch, seed: int, n_cond: int = 0, perturb: bool = True, members: int = 2):
    from models.softtrack.refiner import ResidualNet, TrackRefiner

    torch.manual_seed(seed)
    nets = [ResidualNet(len(REFINER_VARIABLES), n_cond, blocks=2, hidden=16) for _ in range(members)]
    if perturb:
        for net in nets:
            for block in net.blocks:
                with torch.no_grad():
                    block.outer.weight.normal_(0.0, 0.05)
                    block.outer.bias.normal_(0.0, 0.05)
    mean = torch.tensor([0.0, -1.9, -1.7])
    std = torch.tensor([0.25, 0.25, 0.25])
    return TrackRefiner(mean, std, torch.full((n_cond,), 1.2), torch.full((n_cond,), 0.7), nets).eval()


@pytest.fixture(scope="module")
def exported_refiner(torch, tmp_path_factory):
    from models.softtrack.export import export_refiner

    model = _refiner(torch, seed=5, n_cond=1)
    path = tmp_path_factory.mktemp("ref") / "refiner.onnx"
    export_refiner(model, path, REFINER_VARIABLES, ("abseta",), config={"model": "refiner"}, metrics={})
    return model, path


# --- refiner: Fixup identity, ONNX --------------------------------------------------------
def test_refiner_is_identity_at_init(torch, tmp_path):
    from models.softtrack.export import export_refiner

    model = _refiner(torch, seed=1, n_cond=1, perturb=False, members=5)
    x = _raw_tracks(5000, 1, n_cond=1)
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    assert np.array_equal(out, x[:, :3])  # exact, not approximate
    # also through ONNX Runtime: exp(0) * x == x
    path = tmp_path / "identity.onnx"
    export_refiner(model, path, REFINER_VARIABLES, ("abseta",), config={}, metrics={})
    assert np.array_equal(RefinerModel(path)(x), x[:, :3])


def test_refiner_blocks_have_two_hidden_layers_and_learn(torch):
    """Each block: Linear -> LeakyReLU -> Linear -> LeakyReLU -> Linear (thesis Fig. 1.1), the
    output layer zero at init (identity), and a gradient step moves every layer (a Fixup
    block with its inner layers zero as well would have no gradient at all)."""
    from models.softtrack.refiner import ResidualNet

    torch.manual_seed(2)
    net = ResidualNet(3, 0, blocks=3, hidden=8)
    for block in net.blocks:
        linears = [m for m in block.modules() if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(3, 8), (8, 8), (8, 3)]
        assert torch.count_nonzero(block.outer.weight) == 0 and torch.count_nonzero(block.middle.weight) > 0
    z = torch.randn(64, 3)
    c = torch.zeros(64, 0)
    assert torch.equal(net(z, c), torch.zeros_like(z))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):  # the first step moves the output layer, the second the inner ones
        opt.zero_grad()
        ((z + net(z, c) - 1.0) ** 2).mean().backward()
        opt.step()
    for block in net.blocks:
        for layer in (block.inner, block.middle, block.outer):
            assert layer.weight.grad is not None and torch.count_nonzero(layer.weight.grad) > 0


def test_weighted_mmd_is_the_mmd_of_the_weighted_sample(torch):
    """Integer weights are the same as repeated rows (torch and numpy estimators)."""
    from models import metrics
    from models.losses import mmd_biased

    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, (40, 2)), rng.normal(0.3, 1, (50, 2))
    w = rng.integers(1, 4, 40).astype(float)
    rep = np.repeat(x, w.astype(int), axis=0)
    bw = np.array([0.8, 1.1])
    want = metrics.mmd(rep, y, bw, biased=True)
    assert metrics.mmd(x, y, bw, biased=True, x_weights=w) == pytest.approx(want, rel=1e-10)
    got = float(mmd_biased(torch.tensor(x), torch.tensor(y), torch.tensor(bw), torch.tensor(w)))
    assert got == pytest.approx(want, rel=1e-9)
    assert metrics.wasserstein_1d(x[:, 0], y[:, 0], w) == pytest.approx(metrics.wasserstein_1d(rep[:, 0], y[:, 0]))


def test_refiner_weights_from_corrections():
    """Simulated refiner tracks weigh ptz_weight(event) x track_class_sf(class); pileup 1."""
    from analysis.contract import TRACK_ORIGINS
    from models.softtrack.data import RefinerWeights

    class Corr:
        def ptz_weight(self, era, ptz):
            return np.where(np.asarray(ptz) > 300.0, 0.5, 2.0)

        def track_class_sf(self, era, cls):
            return {"pv": 0.9, "spurious": 1.2}[cls]

    ev, tr = RefinerWeights(Corr())("2018", np.array([250.0, 400.0]),
                                    np.array([TRACK_ORIGINS[k] for k in ("primary", "pileup", "spurious")]))
    np.testing.assert_allclose(ev, [2.0, 0.5])
    np.testing.assert_allclose(tr, [0.9, 1.0, 1.2])


def test_refiner_onnx_matches_torch(torch, exported_refiner):
    model, path = exported_refiner
    x = _raw_tracks(20_000, 2, n_cond=1)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    wrapper = RefinerModel(path, batch_rows=3000)  # several batches
    out = wrapper(x)
    assert not np.array_equal(ref, x[:, :3])  # the perturbed net really refines
    np.testing.assert_allclose(out, ref, rtol=ONNX_TOLERANCE, atol=0)
    cols = {"pt": x[:, 0], "dxyErr": x[:, 1], "dzErr": x[:, 2], "abseta": x[:, 3], "unused": x[:, 0]}
    refined = wrapper.refine(cols)
    assert set(refined) == set(REFINER_VARIABLES)
    np.testing.assert_array_equal(refined["dzErr"], out[:, 2])


# --- classifier: folding, ONNX, JSON ------------------------------------------------------
def test_fold_batch_norm_preserves_eval_output(torch):
    from models.softtrack.classifier import fold_batch_norm

    model = _classifier(torch, 10, seed=2)
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    x = torch.randn(4000, 10, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_classifier_onnx_matches_torch_and_checker(torch, exported_classifier):
    import onnx

    from models.softtrack.training import predict_probabilities

    model, path, names, _ = exported_classifier
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    graph_ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "BatchNormalization" not in graph_ops  # folded before export
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 2.0, (25_000, len(names))).astype(np.float32)
    x[:, -3:] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, len(x))]
    ort_p = ClassifierModel(path)(x)
    torch_p = predict_probabilities(model, x)
    assert np.max(np.abs(ort_p - torch_p)) < ONNX_TOLERANCE
    np.testing.assert_allclose(ort_p.sum(axis=1), 1.0, atol=1e-5)


def test_classify_builds_dm_and_era_inputs(exported_classifier):
    _, path, names, _ = exported_classifier
    clf = ClassifierModel(path)
    assert clf.track_features == names[:6]
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(100, 6)).astype(np.float32)
    full = np.concatenate([feats, np.full((100, 1), 0.6, np.float32), np.tile([0, 0, 1], (100, 1)).astype(np.float32)], 1)
    np.testing.assert_array_equal(clf.classify(feats, 0.6, "2018"), clf(full))
    by_name = {n: feats[:, i] for i, n in enumerate(names[:6])}
    np.testing.assert_array_equal(clf.classify(by_name, np.full(100, 0.6), np.full(100, 2)), clf(full))
    lg = clf.signal_logit(feats, 0.6, "2018")
    np.testing.assert_allclose(lg, logit(clf(full)[:, 0]))
    with pytest.raises(ModelError, match="unknown era"):
        clf.classify(feats, 0.6, "2019")


def test_json_round_trip(exported_classifier):
    from models.export import config_hash

    _, path, names, config = exported_classifier
    meta = read_metadata(path)
    assert json.loads(json.dumps(meta)) == meta
    assert meta["kind"] == "classifier" and meta["feature_order"] == list(names)
    assert meta["class_order"] == list(TRACK_CLASSES)
    assert meta["outputs"][0]["columns"] == list(TRACK_CLASSES)
    assert meta["config"] == config and meta["config_sha256"] == config_hash(config)
    assert meta["metrics"] == {"auc": 0.5}
    assert {"torch", "onnx", "softtrack"} <= set(meta["versions"])
    assert isinstance(load_model(path), ClassifierModel)


# --- inference wrapper: errors and pickling ----------------------------------------------
def test_wrong_input_width_raises(exported_classifier):
    _, path, names, _ = exported_classifier
    clf = ClassifierModel(path)
    with pytest.raises(ModelError, match=r"shape \(10, 5\).*\(n, 10\)"):
        clf(np.zeros((10, 5), np.float32))
    with pytest.raises(ModelError, match="lacks column"):
        clf({n: np.zeros(3) for n in names[1:]})
    with pytest.raises(ModelError, match="features of shape"):
        clf.classify(np.zeros((4, 7)), 0.3, "2016")


def test_missing_and_corrupt_files_raise(exported_classifier, tmp_path):
    _, path, _, _ = exported_classifier
    with pytest.raises(ModelError, match="not found"):
        OnnxModel(tmp_path / "nothing.onnx")
    onnx_copy = tmp_path / "m.onnx"
    onnx_copy.write_bytes(path.read_bytes())
    with pytest.raises(ModelError, match=r"m\.json.*not found"):
        OnnxModel(onnx_copy)
    meta = json.loads(path.with_suffix(".json").read_text())
    # corrupt model file: caught by the recorded hash
    onnx_copy.write_bytes(path.read_bytes()[:200])
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="sha256"):
        OnnxModel(onnx_copy)
    # without a hash, onnxruntime itself refuses it (on first use: the session is lazy)
    (tmp_path / "m.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "onnx_sha256"}))
    lazy = OnnxModel(onnx_copy)
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        lazy(np.zeros((1, 10), np.float32))
    # JSON that is not JSON, or does not describe the graph
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        OnnxModel(onnx_copy)
    onnx_copy.write_bytes(path.read_bytes())
    bad = dict(meta, feature_order=meta["feature_order"][:-1], inputs=[{"name": "features", "width": 9}])
    (tmp_path / "m.json").write_text(json.dumps(bad))
    with pytest.raises(ModelError, match="width"):
        OnnxModel(onnx_copy)(np.zeros((1, 9), np.float32))
    with pytest.raises(ModelError, match="refiner"):
        RefinerModel(path)


def test_pickle_drops_session(exported_classifier):
    _, path, names, _ = exported_classifier
    clf = ClassifierModel(path)
    x = np.random.default_rng(0).normal(size=(50, len(names))).astype(np.float32)
    before = clf(x)
    assert clf._session is not None
    blob = pickle.dumps(clf)
    assert b"InferenceSession" not in blob
    clone = pickle.loads(blob)
    assert clone._session is None and clf._session is not None
    np.testing.assert_array_equal(clone(x), before)



def test_model_travels_by_content(exported_classifier, tmp_path):
    """A worker that cannot see the file evaluates the same graph; altered bytes are refused."""
    import shutil

    _, path, names, _ = exported_classifier
    local = tmp_path / "classifier.onnx"
    shutil.copy(path, local)
    shutil.copy(path.with_suffix(".json"), local.with_suffix(".json"))
    clf = ClassifierModel(local)
    assert clf.path.is_absolute()
    x = np.random.default_rng(1).normal(size=(20, len(names))).astype(np.float32)
    before = clf(x)
    blob = pickle.dumps(clf)
    local.unlink()
    local.with_suffix(".json").unlink()
    np.testing.assert_array_equal(pickle.loads(blob)(x), before)
    tampered = pickle.loads(blob)
    tampered.blob = tampered.blob[:-1] + bytes([tampered.blob[-1] ^ 1])
    with pytest.raises(ModelError, match="altered in transit"):
        tampered(x)


def test_load_model_unknown_kind(exported_classifier, tmp_path):
    import shutil

    _, path, _, _ = exported_classifier
    other = tmp_path / "m.onnx"
    shutil.copy(path, other)
    meta = json.loads(path.with_suffix(".json").read_text())
    other.with_suffix(".json").write_text(json.dumps(meta | {"kind": "tagger"}))
    with pytest.raises(ModelError, match=r"kind 'tagger'.*known: classifier, refiner"):
        load_model(other)

def test_logit_transform():
    p = np.array([0.0, 0.5, 1.0])
    expected = np.log((p + LOGIT_EPSILON) / (1 - p + LOGIT_EPSILON))
    np.testing.assert_allclose(logit(p), expected)
    assert logit(1.0) == pytest.approx(np.log(1e6 + 1)) and logit(0.5) == 0.0


# --- losses and metrics ------------------------------------------------------------------
def test_mmd_estimators_torch_and_numpy_agree(torch):
    from models.losses import MDMMConstraint, median_bandwidths, mmd_biased, mmd_unbiased

    rng = np.random.default_rng(6)
    a = rng.normal(size=(400, 3))
    b = rng.normal(size=(300, 3)) * 1.3 + 0.2
    bw_t = median_bandwidths(torch.tensor(a), torch.tensor(b), seed=1)
    bw = metrics.median_bandwidths(a, b, seed=1)
    np.testing.assert_allclose(bw_t.numpy(), bw, rtol=0.05)  # different random pairs
    ta, tb = torch.tensor(a), torch.tensor(b)
    assert float(mmd_biased(ta, tb, bw_t)) == pytest.approx(metrics.mmd(a, b, bw_t.numpy()), rel=1e-9)
    assert float(mmd_unbiased(ta, tb, bw_t)) == pytest.approx(metrics.mmd(a, b, bw_t.numpy(), biased=False), rel=1e-9)
    assert float(mmd_biased(ta, ta, bw_t)) == pytest.approx(0.0, abs=1e-12)
    same = rng.normal(size=(400, 3))
    assert abs(metrics.mmd(a, same, bw, biased=False)) < 0.2 * metrics.mmd(a, b, bw, biased=False)
    # MDMM: gradient ascent on lambda while the constraint is violated (value > target)
    con = MDMMConstraint(target=0.0, damping=1.0, lambda_init=0.5)
    opt = torch.optim.SGD(con.parameters(), lr=0.1)
    con(torch.tensor(0.3)).backward()
    opt.step()
    assert float(con.lmbda.detach()) == pytest.approx(0.5 + 0.1 * 0.3)


def test_roc_auc_and_calibration_helpers():
    rng = np.random.default_rng(7)
    s = rng.normal(size=300)
    pos = rng.random(300) < 0.4
    s[pos] += 1.0
    w = rng.uniform(0.2, 2.0, 300)
    sp, sn = s[pos], s[~pos]
    wp, wn = w[pos], w[~pos]
    gt = (sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :])
    brute = np.sum(wp[:, None] * wn[None, :] * gt) / (wp.sum() * wn.sum())
    assert metrics.roc_auc(s, pos, w) == pytest.approx(brute, rel=1e-12)
    assert metrics.roc_auc(np.ones(10), np.arange(10) < 5) == 0.5
    assert metrics.roc_auc(np.arange(10.0), np.arange(10) >= 5) == 1.0
    # a perfectly calibrated predictor: positives drawn with the predicted probability
    p = rng.random(200_000)
    curve = metrics.calibration_curve(p, rng.random(p.size) < p, n_bins=10)
    np.testing.assert_allclose(curve["fraction_positive"], curve["mean_predicted"], atol=0.01)
    assert len(curve["bin_edges"]) == 11 and sum(curve["weight"]) == p.size


# --- data ------------------------------------------------------------------------------
def test_split_by_event_and_weights():
    table = synthetic_track_table(20_000, 4, seed=8)
    names = [f"f{i}" for i in range(4)]
    data = build_classifier_data({n: table[n] for n in names}, table["label"], table["event"], table["dm"],
                                 table["era"], m_chargino=table["m_chargino"], seed=8)
    # every event in exactly one split, fractions about 70/10/20
    for ev in np.unique(table["event"])[:200]:
        assert np.unique(data.split[table["event"] == ev]).size == 1
    frac = np.bincount(data.split, minlength=3) / data.split.size
    np.testing.assert_allclose(frac, [0.7, 0.1, 0.2], atol=0.03)
    assert set(np.unique(data.split)) == {SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST}
    sig = data.y == TRACK_CLASSES.index("signal")
    # flat in (m, dm): equal total weight per signal point; S and B totals equal
    points = np.stack([table["m_chargino"][sig], table["dm"][sig]], 1)
    _, inv = np.unique(points, axis=0, return_inverse=True)
    per_point = np.bincount(inv.reshape(-1), weights=data.weight[sig])
    np.testing.assert_allclose(per_point, per_point[0], rtol=1e-5)
    assert data.weight[sig].sum() == pytest.approx(data.weight[~sig].sum(), rel=1e-5)
    # background dm drawn from the signal dm values
    dm_col = data.x[:, data.n_features]
    assert set(np.unique(dm_col[~sig])) <= set(np.unique(table["dm"][sig]).astype(np.float32))
    assert data.input_names[-4:] == ("dm", "era_2016", "era_2017", "era_2018")
    np.testing.assert_array_equal(data.x[:, -3:].sum(axis=1), 1.0)
    # reproducible with the same seed
    again = split_by_event(table["event"], 8)
    np.testing.assert_array_equal(again, data.split)


# --- training (small, fast) ----------------------------------------------------------------
def test_classifier_training_on_synthetic_data(torch):
    from models.softtrack.training import (
        ClassifierConfig,
        evaluate_classifier,
        predict_probabilities,
        train_classifier,
    )

    table = synthetic_track_table(12_000, 6, seed=9)
    names = [f"f{i}" for i in range(6)]
    data = build_classifier_data({n: table[n] for n in names}, table["label"], table["event"], table["dm"],
                                 table["era"], m_chargino=table["m_chargino"], seed=9)
    cfg = ClassifierConfig(hidden_layers=(64, 64, 64), epochs=6, batch_size=512, seed=9)
    model, history = train_classifier(data, cfg)
    assert history["val_loss"][-1] < history["val_loss"][0] or min(history["val_loss"]) < 1.0
    ev = evaluate_classifier(lambda x: predict_probabilities(model, x), data)
    assert set(ev["auc"]) == {f"{dm:g}" for dm in CLASSIFIER_DMS}
    for entry in ev["auc"].values():
        for cls in TRACK_CLASSES[1:]:
            assert entry[cls] > 0.9, (entry, cls)
    curve = ev["calibration"]["signal"]
    filled = np.array(curve["weight"]) > 50
    assert np.nanmax(np.abs(np.array(curve["fraction_positive"]) - np.array(curve["mean_predicted"]))[filled]) < 0.2


@pytest.mark.parametrize("loss", ["mmd", "two-stage"])
def test_refiner_training_moves_simulation_to_data(torch, loss):
    from models.softtrack.training import (
        RefinerConfig,
        evaluate_refiner,
        refine_numpy,
        train_refiner,
    )

    # scale factors larger than the toy's, so that 3000 held-out rows resolve them well
    sim = _raw_tracks(9000, 10)
    truth = np.array([1.2, 1.4, 0.8], dtype=np.float32)
    data = _raw_tracks(9000, 11) * truth
    cfg = RefinerConfig(ensemble=2, steps=120, batch_size=256, blocks=2, hidden=32, loss=loss, seed=2,
                        learning_rate=5e-3, stage1_fraction=0.3)
    model, history = train_refiner(sim[:6000], data[:6000], cfg)
    refined = refine_numpy(model, sim[6000:])
    ev = evaluate_refiner(sim[6000:], refined, data[6000:], seed=3)
    assert ev["mmd_b_refined"] < ev["mmd_b_simulation"] / 10
    for i, v in enumerate(REFINER_VARIABLES):
        w = ev["wasserstein_log10"][v]
        assert w["refined"] < w["simulation"] / 4
        # independent samples: data/sim itself scatters by ~3% around the truth here
        assert ev["mean_ratio"][v]["refined_over_simulation"] == pytest.approx(truth[i], rel=0.06)
    assert len(history["members"]) == 2 and all(np.isfinite(e["mmd_b"]) for e in history["members"][0])


# --- the shipped refiner --------------------------------------------------------------------
def test_shipped_refiner():
    if not DEFAULT_REFINER.is_file():
        pytest.skip("models/softtrack/refiner.onnx not shipped")
    ref = RefinerModel()
    meta = ref.meta["metrics"]
    assert meta["mmd_b_refined"] < meta["mmd_b_simulation"] / 5
    for v in ("dxyErr", "dzErr"):
        w = meta["wasserstein_log10"][v]
        assert w["refined"] < w["simulation"] / 2
    x = _raw_tracks(1000, 12)
    out = ref(x)
    assert out.shape == (1000, 3) and np.all(np.isfinite(out)) and np.all(out > 0)
    # the injected errors are larger in data: the refiner scales dxyErr up
    assert 1.03 < np.mean(out[:, 1] / x[:, 1]) < 1.2
    # every per-variable distance drops on the held-out tracks (the weighted simulation)
    assert meta["weighted_simulation"]
    for v, w in meta["wasserstein_log10"].items():
        assert w["refined"] < w["simulation"], v
    # trained on cleaned Drell-Yan with the analysis' weights, two hidden layers per block
    cfg = ref.meta["config"] if isinstance(ref.meta["config"], dict) else {}
    if cfg:
        assert cfg["extra"]["sample"]["ptz_min"] >= 200.0


# --- no torch on the analysis path; the CLI's clear errors --------------------------------
def test_inference_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, models.inference, models.metrics, models.softtrack.data; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=DEFAULT_REFINER.parents[2])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_train_classifier_cli_errors(torch, tmp_path, capsys):
    import importlib.util

    from run import main

    if importlib.util.find_spec("analysis.softtrack.features") is None:
        assert main(["train", "classifier", "--out", str(tmp_path), "--quiet"]) == 2
        assert "analysis/features.py" in capsys.readouterr().err
    # fake features never go into models/
    assert main(["train", "classifier", "--synthetic", "--quiet"]) == 2
    assert "--out DIR outside models/" in capsys.readouterr().err


def test_refiner_data_read_from_files_is_what_the_writer_stored(tmp_path):
    """models.softtrack.data reads the refiner's samples from the ROOT files of a fileset: the track
    columns equal those of the generator's events at the precision the writer stores."""
    from analysis.toymc.sample import generate_mc, generate_stream
    from analysis.toymc.writer import generate_samples, to_arrays
    from models.softtrack.data import (
        REFINER_DATA,
        REFINER_JET_FIELDS,
        REFINER_MUON_FIELDS,
        REFINER_SIMULATION,
        refiner_samples,
        refiner_track_columns,
        refiner_track_fields,
    )

    fileset = generate_samples(tmp_path, ["2018"], [REFINER_SIMULATION, REFINER_DATA], [], 400, 5)
    assert fileset == json.loads((tmp_path / "fileset.json").read_text())
    sim, data = refiner_samples(fileset, ["2018"], conditions=("abseta",))
    for got, (branches, _) in ((sim, generate_mc(REFINER_SIMULATION, "2018", 400, 5)),
                               (data, generate_stream(REFINER_DATA, "2018", 400, 5))):
        stored = to_arrays(branches)
        fields = {"Muon": REFINER_MUON_FIELDS, "Jet": REFINER_JET_FIELDS, "Track": refiner_track_fields(("abseta",))}
        want = refiner_track_columns({k: stored[k][list(f)] for k, f in fields.items()}, conditions=("abseta",))
        assert got["pt"].size > 0 and set(got) == set(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    with pytest.raises(ConfigError, match="no dy_mumu dataset of era 2017"):
        refiner_samples(fileset, ["2017"])
