"""Hostile cases (issue 20): what a user, a killed process or a bad input can do, each checked
for its exit code, its one-line message and that no wrong result was written. Each section
keeps its helpers local (prefixed by its tag)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyhf
import pytest

import run

ROOT = Path(__file__).resolve().parents[1]


# --- limits and generate ---
# Limits: the POI upper bound is widened when the best fit or a limit reaches it
# (docs/physics.md sec. 9, "POI range"), checked against pyhf's own hypotest with wide bounds;
# generate: a sample replaces the previous one atomically (analysis/toymc/writer.py), checked
# by killing `run.py generate` midway; outputs of commands go through analysis/io.py.
_LG_SIGNAL = np.array([1.0, 2.0, 3.0, 4.0])
_LG_BACKGROUND = {"pv": [30.0, 15.0, 4.0, 1.0], "spurious": [20.0, 12.0, 3.0, 0.8]}
#: CLs of our limits against pyhf's default-tolerance fits (tests/test_stats.py)
_LG_CLS_TOL = 5e-5
#: a POI range wide enough for every excess below: pyhf's reference
_LG_WIDE_BOUND = 1000.0


def _lg_yields(excess: float, **changes) -> dict:
    """4 regions, two backgrounds, one signal; observed = background + ``excess`` x signal."""
    total = np.sum(list(_LG_BACKGROUND.values()), axis=0)
    y = {
        "regions": ["SR1", "SR2", "SR3", "SR4"],
        "observed": np.round(total + excess * _LG_SIGNAL).tolist(),
        "backgrounds": {k: {"yields": v, "stat": (0.05 * np.asarray(v)).tolist(), "norm_unc": 0.1}
                        for k, v in _LG_BACKGROUND.items()},
        "signals": {"signal_m115_dm0p27": {"yields": _LG_SIGNAL.tolist(), "stat": (0.1 * _LG_SIGNAL).tolist()}},
        "lumi_unc": 0.016,
        "signal_unc": 0.1,
    }
    y.update(changes)
    return y


def _lg_spec(yields: dict) -> dict:
    from analysis.stats import workspaces_from_yields

    (spec,) = workspaces_from_yields(yields).values()
    return spec


def _lg_bound(spec: dict) -> float:
    return spec["measurements"][0]["config"]["parameters"][0]["bounds"][0][1]


def _lg_pyhf_wide(spec: dict):
    from analysis.stats.limits import model_and_data
    from analysis.stats.workspace import with_poi_upper_bound

    return model_and_data(with_poi_upper_bound(spec, _LG_WIDE_BOUND))


@pytest.mark.parametrize(("excess", "beyond_bound"), [(12.0, False), (20.0, True), (50.0, True)])
def test_lg_large_excess_observed_limit_is_pyhf_with_wide_bounds(excess, beyond_bound):
    """A large excess (mu-hat near or beyond the workspace's POI bound): the bound is widened and
    the observed limit is where pyhf's CLs with wide bounds is 0.05; before, the clipped fit
    gave a too high limit (20x: 28.0 instead of 25.1)."""
    from analysis.stats import AsymptoticCLs, upper_limit
    from analysis.stats.limits import model_and_data

    spec = _lg_spec(_lg_yields(excess))
    res = upper_limit(spec)
    assert res.poi_bound_widened and res.poi_upper_bound_initial == _lg_bound(spec)
    assert res.mu_hat < 0.5 * res.poi_upper_bound and res.observed < res.poi_upper_bound
    model, data = _lg_pyhf_wide(spec)
    obs = pyhf.infer.hypotest(res.observed, data, model, test_stat="qtilde")
    assert float(obs) == pytest.approx(0.05, abs=_LG_CLS_TOL)
    mu_hat = pyhf.infer.mle.fit(data, model)[model.config.poi_index]
    assert res.mu_hat == pytest.approx(float(mu_hat), rel=1e-3)
    clipped = AsymptoticCLs(*model_and_data(spec)).upper_limits()[0]  # the previous computation
    assert (abs(clipped - res.observed) > 0.01 * res.observed) == beyond_bound


@pytest.mark.parametrize("excess", [0.0, 1.0, 3.0])
def test_lg_small_excess_limits_bit_identical(excess):
    """Where nothing reaches the bound, the limits are those of the unwidened computation, bit
    for bit."""
    from analysis.stats import AsymptoticCLs, upper_limit
    from analysis.stats.limits import model_and_data

    spec = _lg_spec(_lg_yields(excess))
    res = upper_limit(spec)
    calc = AsymptoticCLs(*model_and_data(spec))
    observed, expected = calc.upper_limits()
    assert not res.poi_bound_widened and res.poi_upper_bound == _lg_bound(spec)
    assert (res.observed, res.expected) == (observed, expected)
    assert (res.cls_obs_mu1, res.cls_exp_mu1) == calc.cls(1.0)


@pytest.mark.parametrize("norm_unc", [0.3, 0.5])
def test_lg_expected_limits_above_the_bound(norm_unc):
    """A signal shaped like a background with a large normalization uncertainty: the expected
    limits lie far above the statistical POI bound. The scan is not stopped there (pyhf's
    expected CLs at them is 0.05; the limits are those of the spec's bound, bit for bit: only
    the free fits see the bound) and the bound is widened to hold them, so that `pyhf cls`
    takes them (before: 'lies outside of its bounds')."""
    from analysis.stats import AsymptoticCLs, upper_limit
    from analysis.stats.limits import model_and_data
    from analysis.stats.workspace import with_poi_upper_bound

    y = {"regions": ["A", "B"], "observed": [1e4, 1e4],
         "backgrounds": {"bk": {"yields": [1e4, 1e4], "stat": [0.0, 0.0], "norm_unc": norm_unc}},
         "signals": {"sig": {"yields": [1.0, 1.0], "stat": [0.0, 0.0]}}, "lumi_unc": 0.0, "signal_unc": 0.0}
    spec = _lg_spec(y)
    res = upper_limit(spec)
    assert res.expected[4] > _lg_bound(spec)
    assert res.poi_bound_widened and max(res.expected[4], res.observed) < res.poi_upper_bound
    assert (res.observed, res.expected) == AsymptoticCLs(*model_and_data(spec)).upper_limits()
    model, data = model_and_data(with_poi_upper_bound(spec, res.poi_upper_bound))
    for i in (2, 4):
        _, expected = pyhf.infer.hypotest(res.expected[i], data, model, test_stat="qtilde",
                                          return_expected_set=True)
        assert float(expected[i]) == pytest.approx(0.05, abs=_LG_CLS_TOL)


def _lg_empty_signal_variation() -> dict:
    """Table 2 with jes and pu shapes, the signal's pu variation empty (a histosys to zero)."""
    table2 = json.loads((ROOT / "tests" / "data" / "summary_table2_yields.json").read_text())
    name = "signal_m115_dm0p568"
    y = {k: table2[k] for k in ("regions", "observed", "lumi_unc")}
    y["backgrounds"] = {
        b: {**v, "shapes": {s: {"up": (hi * np.asarray(v["yields"])).tolist(), "down": (lo * np.asarray(v["yields"])).tolist()}
                            for s, hi, lo in (("jes", 1.05, 0.96), ("pu", 1.02, 0.98))}}
        for b, v in table2["backgrounds"].items()}
    sig = table2["signals"][name]
    y["signals"] = {name: {**sig, "shapes": {"jes": {"up": sig["yields"], "down": sig["yields"]},
                                             "pu": {"up": [0.0] * 12, "down": [0.0] * 12}}}}
    return y


@pytest.mark.parametrize("mu", [0.5, 1.0])
def test_lg_fit_stuck_in_a_failed_line_search_continues(mu):
    """A signal variation that empties it: TNC stops with 'linear search failed' far from the
    minimum of the fixed-mu fit; the fit continues with L-BFGS-B and CLs equals pyhf's
    (before: 1.8e-8 at mu = 1, an exclusion, where pyhf gives 0.38)."""
    from analysis.stats import AsymptoticCLs, cls_pyhf
    from analysis.stats.limits import model_and_data

    spec = _lg_spec(_lg_empty_signal_variation())
    assert AsymptoticCLs(*model_and_data(spec)).cls(mu)[0] == pytest.approx(cls_pyhf(spec, mu)[0], abs=_LG_CLS_TOL)


def test_lg_limits_cli_warns_of_a_variation_that_empties_the_signal(tmp_path, capsys):
    """Its likelihood has a second minimum (pu = +-1 removes the signal) that the fits started
    from the neighbouring mu can miss: the limits come with a one-line warning naming it."""
    src = tmp_path / "yields.json"
    src.write_text(json.dumps(_lg_empty_signal_variation()))
    assert run.main(["limits", "--yields", str(src), "--out", str(tmp_path / "limits.json"), "--workers", "1"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and all(w in lines[0] for w in ("signal_m115_dm0p568", "pu up, pu down", "empties")), lines


def test_lg_limits_cli_says_the_bound_was_widened_and_writes_it(tmp_path, capsys):
    src = tmp_path / "yields.json"
    src.write_text(json.dumps(_lg_yields(20.0)))
    out = tmp_path / "limits.json"
    assert run.main(["limits", "--yields", str(src), "--out", str(out), "--workers", "1"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "POI upper bound" in ln]
    entry = json.loads(out.read_text())["signals"]["signal_m115_dm0p27"]
    assert len(lines) == 1 and "widened to" in lines[0] and "signal_m115_dm0p27" in lines[0]
    from analysis.stats import upper_limit

    res = upper_limit(_lg_spec(_lg_yields(20.0)))
    assert entry["poi_bound_widened"] is True and (entry["observed"], entry["expected"]) == (res.observed, res.expected)
    assert _lg_bound(json.loads(Path(entry["workspace"]).read_text())) == entry["poi_upper_bound"]


@pytest.mark.parametrize(("case", "words"), [
    ("out is a directory", ["--out", "is a directory"]),
    ("out below a file", ["cannot write --out", "choose another path"]),
])
def test_lg_limits_cli_refuses_with_one_line_and_writes_nothing(tmp_path, capsys, case, words):
    """A bad --out is found before any fit (before: a traceback after all of them)."""
    src = tmp_path / "yields.json"
    src.write_text(json.dumps(_lg_yields(0.0)))
    if case == "out is a directory":
        out = tmp_path / "limits.json"
        out.mkdir()
    else:
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "limits.json"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run.main(["limits", "--yields", str(src), "--out", str(out), "--workers", "1"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error:") and all(w in err[0] for w in words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no limits, no workspaces


def test_lg_no_upper_limit_is_a_one_line_error():
    """CLs that never reaches the level (a signal a nuisance parameter can remove): a
    YieldsError saying so (before: RuntimeError, a traceback)."""
    from analysis.errors import YieldsError
    from analysis.stats import AsymptoticCLs

    with pytest.raises(YieldsError, match="no upper limit"):
        AsymptoticCLs._solve(lambda mu: -1.0, 1.0, 1e-6)


@pytest.mark.parametrize("how", ["exception", "sigkill"])
@pytest.mark.parametrize("api", ["write_atomic", "atomic_output"])
def test_lg_atomic_write_interrupted_keeps_the_old_file(tmp_path, how, api):
    """A writer interrupted midway (an exception, or SIGKILL of its process) leaves the previous
    file as it was."""
    target = tmp_path / "summary.json"
    target.write_text('{"old": true}')
    body = {  # stopped after the new content is written, before it is renamed into place
        "write_atomic": "os.fsync = lambda fd: stop()\nwrite_atomic(t, '{\"new\": true}')",
        "atomic_output": "with atomic_output(t) as tmp:\n    tmp.write_text('{\"new\": tr')\n    stop()",
    }[api]
    stop = "os.kill(os.getpid(), signal.SIGKILL)" if how == "sigkill" else "raise RuntimeError('disk full')"
    code = (
        "import os, signal, sys\nfrom pathlib import Path\nfrom analysis.io import atomic_output, write_atomic\n"
        f"def stop(*args):\n    {stop}\n"
        f"t = Path(sys.argv[1])\n{body}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True, text=True)
    assert r.returncode == (-signal.SIGKILL if how == "sigkill" else 1), r.stderr
    assert target.read_text() == '{"old": true}'
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert leftovers == [] if how == "exception" else all(n.startswith(".summary.tmp-") for n in leftovers)


_LG_GEN = {"eras": ["2016"], "procs": ["qcd", "data_jetht", "signal"], "points": [(140.0, 0.58), (200.0, 1.0)],
           "n": 300}
_LG_OLD_SEED, _LG_NEW_SEED = 3, 4


def _lg_generate(out: Path, seed: int, procs=None) -> str:
    """Generate the small request in-process; returns its request hash."""
    from analysis.toymc.writer import generate_samples, request_hash

    procs = procs or _LG_GEN["procs"]
    generate_samples(out, _LG_GEN["eras"], procs, _LG_GEN["points"], _LG_GEN["n"], seed)
    return request_hash(_LG_GEN["eras"], procs, _LG_GEN["points"], _LG_GEN["n"], seed)


def _lg_digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def _lg_samples(tmp_path_factory):
    """An old sample (seed 3, with one dataset more) and the hash of the new request (seed 4)."""
    from analysis.toymc.writer import request_hash

    old = tmp_path_factory.mktemp("lg_old") / "sample"
    old_hash = _lg_generate(old, _LG_OLD_SEED, [*_LG_GEN["procs"], "data_met"])
    new_hash = request_hash(_LG_GEN["eras"], _LG_GEN["procs"], _LG_GEN["points"], _LG_GEN["n"], _LG_NEW_SEED)
    return old, old_hash, new_hash


def _lg_copy_old(samples, tmp_path: Path) -> Path:
    """A copy of the old sample (its fileset's paths rewritten to the copy) and a user's file."""
    from analysis.toymc.writer import FILESET, REQUEST

    old, _, _ = samples
    out = tmp_path / "sample"
    shutil.copytree(old, out)
    text = (old / FILESET).read_text().replace(str(old.resolve()), str(out.resolve()))
    (out / FILESET).write_text(text)
    request = json.loads((out / REQUEST).read_text())
    request["fileset_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (out / REQUEST).write_text(json.dumps(request))
    (out / "notes.txt").write_text("mine")
    return out


def _lg_state(out: Path, samples, old_digests: dict) -> str:
    """'old' or 'new' if ``out`` holds that sample complete (and nothing of the other), else
    what is wrong."""
    from analysis.toymc.writer import check_sample

    _, old_hash, new_hash = samples
    if check_sample(out, old_hash) is None and _lg_digests(out) == old_digests:
        return "old"
    if check_sample(out, new_hash) is None and not (out / "data_met_2016.root").exists():
        return "new"
    return f"mixed: old {check_sample(out, old_hash)}; new {check_sample(out, new_hash)}"


@pytest.mark.parametrize("files_before_kill", [0, 1, 3])
def test_lg_generate_killed_midway_leaves_old_or_new(_lg_samples, tmp_path, files_before_kill):
    """SIGKILL of `run.py generate` into a directory holding a previous sample, after N of its
    files are written: the directory holds the complete old sample (before: a regenerated file
    beside the old fileset.json); the next generate leaves the complete new one."""
    from analysis.toymc.writer import STAGING_PREFIX, present_fileset

    out = _lg_copy_old(_lg_samples, tmp_path)
    old_digests = _lg_digests(out)
    cmd = [sys.executable, str(ROOT / "run.py"), "generate", "--out", str(out), "--eras", "2016",
           "--processes", ",".join(_LG_GEN["procs"]), "--signal-points", "140:0.58,200:1.0",
           "--events-per-sample", str(_LG_GEN["n"]), "--seed", str(_LG_NEW_SEED), "--quiet"]
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=stderr)
        staging = out / f"{STAGING_PREFIX}{proc.pid}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if staging.is_dir() and len(list(staging.glob("*.root"))) >= files_before_kill:
                break
            time.sleep(0.005)
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    assert _lg_state(out, _lg_samples, old_digests) == "old"
    assert present_fileset(out, _lg_samples[2]) is None  # not the new request: generate it
    assert not staging.exists()  # the dead generate's staging directory went with that check
    _lg_generate(out, _LG_NEW_SEED)
    assert _lg_state(out, _lg_samples, old_digests) == "new"
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(out.glob(f"{STAGING_PREFIX}*"))


class _LgKilled(BaseException):
    """Stands for SIGKILL inside the commit (no handler of the writer runs for it)."""


@pytest.mark.parametrize("moves_before_kill", [0, 2, 4, 5])
def test_lg_generate_killed_during_the_commit_is_finished(_lg_samples, tmp_path, monkeypatch, moves_before_kill):
    """A generate killed while moving its committed sample into place (after N of the 4 files,
    fileset.json and request.json): readers never see the old fileset.json beside a new file,
    and the next look at the directory (present_fileset, as the main job does) finishes it."""
    from analysis.toymc import writer

    out = _lg_copy_old(_lg_samples, tmp_path)
    old_digests = _lg_digests(out)
    moves = []
    real_move = writer._move

    def move(src, dst):
        if len(moves) == moves_before_kill:
            raise _LgKilled
        moves.append(src.name)
        real_move(src, dst)

    monkeypatch.setattr(writer, "_move", move)
    with pytest.raises(_LgKilled):
        _lg_generate(out, _LG_NEW_SEED)
    monkeypatch.setattr(writer, "_move", real_move)
    fileset = out / writer.FILESET
    if fileset.exists():  # only the new one may be there, never the old one beside new files
        assert moves_before_kill == 5 and writer.check_sample(out, _lg_samples[1]) is not None
    assert writer.present_fileset(out, _lg_samples[2]) == fileset
    assert _lg_state(out, _lg_samples, old_digests) == "new"
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("damage", "words"), [
    ("truncated file", ["qcd_2016.root", "bytes"]),
    ("file of another sample", ["qcd_2016.root"]),
    ("missing file", ["qcd_2016.root", "missing"]),
    ("stale fileset.json", ["fileset.json", "not the one"]),
    ("older generator", ["records no files"]),
])
def test_lg_incomplete_sample_is_not_reused(_lg_samples, tmp_path, damage, words):
    """present_fileset (the main job's reuse check) refuses a sample that is not exactly as
    written, and check_sample says why in one line."""
    from analysis.toymc.writer import FILESET, REQUEST, check_sample, present_fileset

    out = _lg_copy_old(_lg_samples, tmp_path)
    _, old_hash, _ = _lg_samples
    assert present_fileset(out, old_hash) == out / FILESET
    qcd = out / "qcd_2016.root"
    if damage == "truncated file":
        qcd.write_bytes(qcd.read_bytes()[:1000])
    elif damage == "file of another sample":
        other = tmp_path / "other"
        _lg_generate(other, _LG_NEW_SEED, ["qcd"])
        shutil.copyfile(other / "qcd_2016.root", qcd)
    elif damage == "missing file":
        qcd.unlink()
    elif damage == "stale fileset.json":
        fileset = json.loads((out / FILESET).read_text())
        fileset.pop("data_met_2016")
        (out / FILESET).write_text(json.dumps(fileset, indent=1))
    else:
        request = json.loads((out / REQUEST).read_text())
        del request["files"], request["fileset_sha256"]
        (out / REQUEST).write_text(json.dumps(request))
    assert present_fileset(out, old_hash) is None
    why = check_sample(out, old_hash)
    assert "\n" not in why and all(w in why for w in words), why


def test_lg_main_job_regenerates_an_incomplete_sample(tmp_path, monkeypatch, capsys):
    """ensure_sample (the main job's first stage) reuses a complete sample, and generates it
    again when a file is not as recorded (a smaller request stands for the default one)."""
    from analysis.toymc import processes
    from commands import main_job

    monkeypatch.setattr(main_job.cfg, "ERAS", ("2016",))
    monkeypatch.setattr(processes, "ALL_PROCESSES", ("qcd",))
    monkeypatch.setattr(processes, "DATA_STREAMS", ("data_jetht",))
    monkeypatch.setattr(main_job, "default_signal_points", lambda: [(140.0, 0.58)])
    stages = main_job.Stages(quiet=False)
    data = tmp_path / "default"
    fileset = main_job.ensure_sample(data, 300, 1, stages)
    digests = _lg_digests(data)
    assert main_job.ensure_sample(data, 300, 1, stages) == fileset and _lg_digests(data) == digests
    assert "default sample present" in capsys.readouterr().err
    qcd = data / "qcd_2016.root"
    qcd.write_bytes(qcd.read_bytes()[:-10])
    assert main_job.ensure_sample(data, 300, 1, stages) == fileset
    assert "generating the default sample again" in capsys.readouterr().err
    from analysis.toymc.writer import check_sample

    assert check_sample(data, json.loads((data / "request.json").read_text())["hash"]) is None
    assert qcd.stat().st_size > 0 and _lg_digests(data).keys() == digests.keys()
# --- limits and generate ---
