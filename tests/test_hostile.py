"""Hostile inputs (issue 20): each case asserts the exit code of ``run.py process`` (or the
exception), that the message is one line naming the thing and the fix, and that no output
was written. The sections belong to the areas of the framework they test; each keeps its
helpers to itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run

# --- fileset and remote inputs ---
# Cases run ``run.main`` (what ``python run.py`` calls: the same exit code and stderr) in this
# process; test_fs_cli_subprocess checks that the real command line behaves alike.

_FS_ROOT = Path(__file__).resolve().parents[1]
_FS_REAL = _FS_ROOT.parent / "shared" / "data" / "real" / "nano_dimuon.root"
_FS_SIM = {"process": "dy_mumu", "era": "2018", "is_data": False, "xsec_pb": 6000.0, "sum_genweight": 40.0}
_FS_PSEUDO = {"process": "data_singlemuon", "era": "2018", "is_data": True, "lumi_fb": 0.1, "n_events": 40,
              "seed": 3, "generator_version": "7", "processes": ["dy_mumu"]}


def _fs_real(tmp_path: Path) -> Path:
    """A private copy of a real NanoAOD file (40 events)."""
    if not _FS_REAL.is_file():
        pytest.skip(f"real NanoAOD files not found at {_FS_REAL.parent}")
    copy = tmp_path / "data" / "dimuon.root"
    copy.parent.mkdir(exist_ok=True)
    if not copy.exists():
        shutil.copy(_FS_REAL, copy)
    return copy


def _fs_one(tmp_path, meta, path=None) -> dict:
    return {"ds": {"files": {str(path or _fs_real(tmp_path)): "Events"}, "metadata": meta}}


def _fs_two(tmp_path, second: str) -> dict:
    """The real file in dataset ``ds`` and, reached another way, ``second`` in ``again``."""
    first = _fs_real(tmp_path)
    return {"ds": {"files": {str(first): "Events"}, "metadata": _FS_SIM},
            "again": {"files": {second: "Events"}, "metadata": _FS_SIM}}


def _fs_symlink(tmp_path) -> dict:
    link = tmp_path / "link.root"
    link.symlink_to(_fs_real(tmp_path))
    return _fs_two(tmp_path, str(link))


def _fs_dotdot(tmp_path) -> dict:
    (tmp_path / "other").mkdir()
    return _fs_two(tmp_path, "other/../data/dimuon.root")


def _fs_copy(tmp_path) -> dict:
    copy = tmp_path / "copy.root"
    shutil.copy(_fs_real(tmp_path), copy)
    return _fs_two(tmp_path, str(copy))


def _fs_meta(**changes):
    def build(tmp_path):
        base = _FS_PSEUDO if changes.get("is_data", _FS_SIM["is_data"]) or "lumi_fb" in changes else _FS_SIM
        meta = {k: v for k, v in (base | changes).items() if v is not None}
        return _fs_one(tmp_path, meta)
    return build


def _fs_url(url):
    return lambda tmp_path: _fs_one(tmp_path, _FS_SIM, url)


#: (case, fileset builder, words the one error line must hold)
_FS_CASES = [
    ("xsec-negative", _fs_meta(xsec_pb=-1.0), ["'ds'", "xsec_pb = -1.0", "positive finite", "fix the fileset"]),
    ("xsec-nan", _fs_meta(xsec_pb=float("nan")), ["'ds'", "xsec_pb = nan", "positive finite"]),
    ("xsec-missing", _fs_meta(xsec_pb=None), ["'ds'", "metadata.xsec_pb", "add it", "is_data"]),
    ("sum-genweight-zero", _fs_meta(sum_genweight=0.0), ["'ds'", "sum_genweight = 0.0", "positive finite"]),
    ("sum-genweight-inf", _fs_meta(sum_genweight=float("inf")), ["'ds'", "sum_genweight = inf", "positive finite"]),
    ("lumi-negative", _fs_meta(lumi_fb=-2.0), ["'ds'", "lumi_fb = -2.0", "positive finite"]),
    ("pseudo-data-without-lumi", _fs_meta(is_data=True, lumi_fb=None),
     ["'ds'", "pseudo-data", "without metadata.lumi_fb", "configuration's luminosity", "add lumi_fb"]),
    ("unknown-process", _fs_meta(process="dy_mumuu"), ["'ds'", "'dy_mumuu'", "did you mean 'dy_mumu'", "processes="]),
    ("same-file-symlink", _fs_symlink, ["'ds'", "'again'", "link.root", "same file", "real path", "list it once"]),
    ("same-file-dotdot", _fs_dotdot, ["'ds'", "'again'", "other/../data/dimuon.root", "same file", "list it once"]),
    ("same-file-copy-uuid", _fs_copy, ["'ds'", "'again'", "copy.root", "ROOT file UUID", "list it once"]),
    ("unknown-scheme", _fs_url("rooot://127.0.0.1//store/f.root"), ["'ds'", "'rooot'", "root://", "https://"]),
    ("https-unreachable", _fs_url("https://127.0.0.1:9/f.root"),
     ["https://127.0.0.1:9/f.root", "dataset ds", "cannot read", "--skip-bad-files"]),
    ("http-unreachable", _fs_url("http://127.0.0.1:9/f.root"),
     ["http://127.0.0.1:9/f.root", "dataset ds", "timeout", "--skip-bad-files"]),
]


def _fs_run(tmp_path, datasets, *extra) -> tuple[int, Path]:
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps(datasets))
    out = tmp_path / "out" / "zpeak.coffea"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old real files lack NanoAOD branches the schema knows
        rc = run.main(["process", "--analysis", "zpeak", "--fileset", str(fileset), "--out", str(out),
                       "--executor", "iterative", "--quiet", *extra])
    return rc, out


def _fs_assert_refused(rc, err: str, out: Path, words) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not out.exists() and not out.with_name(out.stem + ".histograms.json.gz").exists()


@pytest.mark.parametrize("case, build, words", _FS_CASES, ids=[c[0] for c in _FS_CASES])
def test_fs_hostile(tmp_path, capsys, case, build, words):
    datasets = build(tmp_path)
    rc, out = _fs_run(tmp_path, datasets)
    _fs_assert_refused(rc, capsys.readouterr().err, out, words)


def test_fs_xrootd_extra_missing(tmp_path, capsys, monkeypatch):
    """root:// without the [xrootd] extra: refused before anything runs, naming the extra."""
    from processors import fileset

    monkeypatch.setattr(fileset, "_xrootd_available", lambda: False)
    rc, out = _fs_run(tmp_path, _fs_url("root://127.0.0.1//store/f.root")(tmp_path))
    _fs_assert_refused(rc, capsys.readouterr().err, out, ["root://127.0.0.1//store/f.root", "[xrootd]", "pip install"])


def test_fs_bad_timeout(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _fs_run(tmp_path, _fs_one(tmp_path, _FS_SIM), "--xrootd-timeout", "0")
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--xrootd-timeout" in last and "positive" in last and "'0'" in last


def _fs_subprocess(args, env_extra=None, cwd=None):
    env = dict(os.environ) | (env_extra or {})
    env["PYTHONPATH"] = os.pathsep.join([str(_FS_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, str(_FS_ROOT / "run.py"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_fs_cli_subprocess(tmp_path):
    """``python run.py process`` itself: a NaN cross section, exit 2, one line, no output."""
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps(_fs_meta(xsec_pb=float("nan"))(tmp_path)))
    out = tmp_path / "o.coffea"
    r = _fs_subprocess(["process", "--analysis", "zpeak", "--fileset", str(fileset), "--out", str(out)], cwd=tmp_path)
    _fs_assert_refused(r.returncode, r.stderr, out, ["'ds'", "xsec_pb = nan", "positive finite"])


def test_fs_xrootd_unreachable_timeout(tmp_path):
    """A root:// server that does not answer: the run gives up after --xrootd-timeout (the
    XRootD client checks its timeouts every XRD_TIMEOUTRESOLUTION s, 15 by default) with one
    line naming the URL, the timeout and the fix."""
    import importlib.util

    if importlib.util.find_spec("fsspec_xrootd") is None or importlib.util.find_spec("XRootD") is None:
        pytest.skip("the [xrootd] extra is not installed (pip install -e \".[xrootd]\")")
    url = "root://127.0.0.1:9//store/f.root"  # the discard port: nothing listens
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps(_fs_url(url)(tmp_path)))
    out = tmp_path / "o.coffea"
    t0 = time.monotonic()
    r = _fs_subprocess(["process", "--analysis", "zpeak", "--fileset", str(fileset), "--out", str(out),
                        "--xrootd-timeout", "2"], env_extra={"XRD_TIMEOUTRESOLUTION": "1"}, cwd=tmp_path)
    assert time.monotonic() - t0 < 60
    _fs_assert_refused(r.returncode, r.stderr, out, [url, "dataset ds", "timeout 2 s", "--skip-bad-files"])

# --- fileset and remote inputs ---
