"""Throughput of the soft-track classifier through ONNX Runtime vs torch, one core.

docs/physics.md sec. 4 (evaluated in processors with onnxruntime) and ARCHITECTURE.md
(batch norm folded before export, batches of ~10^4 rows). Builds the classifier at its
default architecture (37 track features + Delta m + 3 era columns, 3 x 256) with random
weights and non-trivial batch-norm statistics -- throughput does not depend on the weights
-- exports it, and prints rows/s of :class:`models.inference.ClassifierModel` (one
intra-op thread) and of the torch model in eval mode (``torch.set_num_threads(1)``) at
batch sizes 10^3, 10^4, 10^5, with their ratio. Best of ``--repeat`` timings (the machine
may be shared). Also reports the largest |P_onnx - P_torch|.

Run as ``python benchmarks/bench_inference.py [--rows 200000] [--repeat 3]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.softtrack.config import CLASSIFIER_DM_INPUT, CLASSIFIER_ERA_INPUTS  # noqa: E402

N_TRACK_FEATURES = 37  # docs/physics.md sec. 3 / thesis Table 4.2
BATCH_SIZES = (1_000, 10_000, 100_000)
SEED = 1


def build_model():
    import torch

    from models.softtrack.classifier import TrackClassifier

    torch.manual_seed(SEED)
    n_inputs = N_TRACK_FEATURES + 1 + len(CLASSIFIER_ERA_INPUTS)
    model = TrackClassifier(torch.zeros(n_inputs), torch.ones(n_inputs))
    gen = torch.Generator().manual_seed(SEED)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)):
        with torch.no_grad():
            bn.running_mean.normal_(0.0, 0.5, generator=gen)
            bn.running_var.uniform_(0.5, 2.0, generator=gen)
    names = (*[f"f{i}" for i in range(N_TRACK_FEATURES)], CLASSIFIER_DM_INPUT, *CLASSIFIER_ERA_INPUTS)
    return model.eval(), names


def best_time(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000, help="rows evaluated per timing")
    p.add_argument("--repeat", type=int, default=3, help="timings per point (best is kept)")
    args = p.parse_args()

    import torch

    from models.softtrack.export import export_classifier
    from models.softtrack.inference import ClassifierModel

    torch.set_num_threads(1)
    model, names = build_model()
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(args.rows, len(names))).astype(np.float32)
    x[:, -3:] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, args.rows)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classifier.onnx"
        export_classifier(model, path, names, config={"benchmark": True}, metrics={})
        print(f"classifier: {len(names)} inputs, hidden {[256] * 3}, {args.rows} rows per timing, 1 thread")
        print(f"{'batch':>8} {'onnxruntime rows/s':>20} {'torch rows/s':>14} {'ratio ort/torch':>16}")
        xt = torch.from_numpy(x)
        for batch in BATCH_SIZES:
            ort_model = ClassifierModel(path, threads=1, batch_rows=batch)
            ort_model(x[:batch])  # session creation and warm-up outside the timing

            def run_torch(batch=batch):
                with torch.no_grad():
                    for start in range(0, args.rows, batch):
                        torch.softmax(model(xt[start : start + batch]), dim=1)

            run_torch()
            t_ort = best_time(lambda m=ort_model: m(x), args.repeat)
            t_torch = best_time(run_torch, args.repeat)
            print(f"{batch:>8} {args.rows / t_ort:>20,.0f} {args.rows / t_torch:>14,.0f} {t_torch / t_ort:>16.2f}")
        ort_p = ClassifierModel(path)(x[:20_000])
        with torch.no_grad():
            torch_p = torch.softmax(model(xt[:20_000]), dim=1).numpy()
        print(f"max |P_onnx - P_torch| = {np.max(np.abs(ort_p - torch_p)):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
