"""The smuon networks: training and export (torch, ``[train]`` extra) agree with their ONNX
evaluation; the shipped networks describe themselves and separate signal from background on a
sample they were not trained on (models/smuon/; docs/smuon.md sec. 5)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from analysis.errors import ModelError
from analysis.smuon.config import NetworkTraining
from analysis.smuon.features import FEATURES
from models.metrics import roc_auc
from models.smuon.inference import SHIPPED, SmuonNetwork


def _components(seed: int = 0):
    from models.smuon.training import Component

    rng = np.random.default_rng(seed)
    comps = []
    for i, shift in enumerate((0.8, 1.2)):
        comps.append(Component(f"sig{i}", True, rng.normal(shift, 1.0, (400, 37)).astype(np.float32),
                               np.full(400, 0.01), (100.0 * (i + 2), 0.0)))
    for i in range(3):
        comps.append(Component(f"bkg{i}", False, rng.normal(0.0, 1.0 + 0.1 * i, (600, 37)).astype(np.float32),
                               np.full(600, 0.5)))
    return comps


def test_onnx_agrees_with_torch(tmp_path):
    """A network trained for a few epochs and exported: ONNX Runtime's scores equal torch's to
    1e-5 on every test row, and the JSON carries the feature order, standardization, threshold."""
    torch = pytest.importorskip("torch")
    from models.smuon.network import StandardizedScore
    from models.smuon.training import export_network, train_network

    cfg = NetworkTraining(epochs=3)
    result = train_network(_components(), cfg)
    json_path = export_network(result, tmp_path / "smuon_nn_low.onnx", "low", cfg, [(200.0, 0.0), (300.0, 0.0)])
    meta = json.loads(json_path.read_text())
    assert meta["feature_order"] == list(FEATURES) and meta["threshold"] == 0.7 and meta["network"] == "low"
    assert len(meta["standardization"]["mean"]) == 37
    x = result.test.x
    with torch.no_grad():
        ref = StandardizedScore(result.model, result.mean, result.std)(torch.as_tensor(x)).numpy().reshape(-1)
    ours = SmuonNetwork(tmp_path / "smuon_nn_low.onnx").score(x)
    assert np.max(np.abs(ours - ref)) <= 1e-5
    assert meta["metrics"]["onnx_torch_max_abs_diff"] <= 1e-5
    assert 0 <= meta["metrics"]["best_epoch"] < 3
    assert meta["metrics"]["test_roc_auc_by_point"]["sig1"] > 0.9


def test_balanced_training_set():
    """Signal and background classes of equal size, shared equally by their components."""
    pytest.importorskip("torch")
    from models.smuon.training import balanced, split_components

    comps = _components()
    rng = np.random.default_rng(1)
    train, val, test = split_components(comps, (0.8, 0.1, 0.1), rng)
    assert train.y.size + val.y.size + test.y.size == sum(c.x.shape[0] for c in comps)
    bal = balanced(train, comps, rng)
    per = np.bincount(bal.component, minlength=len(comps))
    assert per[0] == per[1] and per[2] == per[3] == per[4]
    assert abs(int((bal.y > 0.5).sum()) - int((bal.y < 0.5).sum())) <= 3


shipped = pytest.mark.skipif(not all(p.is_file() for p in SHIPPED.values()), reason="no shipped smuon networks")


@shipped
def test_shipped_networks_describe_themselves():
    for name, path in SHIPPED.items():
        net = SmuonNetwork(path)
        assert net.network == name and net.threshold == 0.7 and net.feature_order == FEATURES
        metrics = net.meta["metrics"]
        assert metrics["onnx_torch_max_abs_diff"] <= 1e-5
        # seed 002 Table 7 reports 0.97-0.999 for the massless-neutralino benchmarks
        for point, auc in metrics["test_roc_auc_by_point"].items():
            if point.endswith("_x0_run2") and not point.startswith("smuon_m100_"):
                assert auc > 0.95, (name, point, auc)


@shipped
def test_shipped_networks_on_an_independent_sample(smuon_sample):
    """On the test fixture's sample (another seed than the training sample's) the networks
    separate the massless-neutralino points from the backgrounds (weighted ROC AUC)."""
    from processors.fileset import load_fileset
    from processors.runner import RunOptions, make_processor, run
    from processors.smuon.processor import SmuonProcessor

    out, _ = smuon_sample
    fileset = load_fileset(out / "fileset.json")
    proc = make_processor(SmuonProcessor, fileset, networks={}, store_features=True)
    output = run(proc, fileset, RunOptions(executor="iterative", chunksize=5000, status=False))
    feats = {ds: (np.concatenate([p["x"] for p in parts]), np.concatenate([p["w"] for p in parts]))
             for ds, parts in output["features"].items()}
    bkg = [ds for ds in feats if not ds.startswith("smuon_")]
    xb = np.concatenate([feats[d][0] for d in bkg])
    wb = np.concatenate([feats[d][1] for d in bkg])
    nets = {n: SmuonNetwork(p) for n, p in SHIPPED.items()}
    for ds, network, minimum in (("smuon_m200_x0_run2", "low", 0.93), ("smuon_m300_x0_run2", "high", 0.95),
                                 ("smuon_m500_x0_run2", "high", 0.98)):
        xs, ws = feats[ds]
        scores = nets[network].score(np.concatenate([xs, xb]))
        auc = roc_auc(scores, np.r_[np.ones(len(xs), bool), np.zeros(len(xb), bool)], np.r_[ws, wb])
        assert auc > minimum, (ds, network, auc)


def test_a_network_with_another_feature_order_is_refused(tmp_path):
    if not SHIPPED["low"].is_file():
        pytest.skip("no shipped smuon network")
    shutil.copy(SHIPPED["low"], tmp_path / "n.onnx")
    meta = json.loads(SHIPPED["low"].with_suffix(".json").read_text())
    meta["feature_order"] = list(reversed(meta["feature_order"]))
    (tmp_path / "n.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="feature_order"):
        SmuonNetwork(tmp_path / "n.onnx")


def test_no_torch_at_run_time():
    """The processor, its networks and the main job import no torch (ONNX Runtime only)."""
    import subprocess
    import sys

    code = ("import sys; import processors.smuon.processor, processors.smuon.sensitivity, commands.smuon, "
            "models.smuon.inference; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
