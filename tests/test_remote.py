"""Remote inputs (issue 20): files read over ``root://`` from Debian's XRootD server and over
``http://`` and ``https://`` from a server with byte ranges, both started and stopped here on
127.0.0.1, give the histograms and cutflows of the local files bit for bit: the zpeak analysis
on the real ``nano_dimuon.root`` and the soft-track signal processor on a small generated
sample.

The XRootD tests skip, saying why, only when the ``xrootd`` daemon (Debian ``xrootd-server``;
``.ci/run`` installs it) or the ``[xrootd]`` extra (fsspec-xrootd, XRootD bindings) is missing.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

import run
from processors.compare import IDENTICAL, compare_files

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "real"
REAL_FILE = "nano_dimuon.root"
#: the generated sample: the signal region's simulation, signal and pseudo-data (small, fast)
GENERATED = (["2018"], ["zjets_nunu", "signal", "data_met"], [(115.0, 0.27)], 600, 11)
#: small chunks: every file is read in several ranges
CHUNKSIZE = "250"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen | None, log: Path | None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text()[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {text}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _env() -> dict:
    """The environment of a subprocess: this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


# --- the served directory -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Path:
    """A world-readable directory (the XRootD daemon runs as ``nobody`` under root) holding the
    generated sample (``gen/``) and, where present, the real NanoAOD file."""
    from analysis.toymc.writer import generate_samples

    top = Path(tempfile.mkdtemp(prefix="softtrack-remote-"))
    try:
        top.chmod(0o755)
        eras, procs, points, n, seed = GENERATED
        generate_samples(top / "gen", eras, procs, points, n, seed)
        if (REAL_DATA / REAL_FILE).is_file():
            shutil.copy(REAL_DATA / REAL_FILE, top / REAL_FILE)
        for p in [top, *top.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _write_fileset(served: Path, out: Path, analysis: str, base: str | None) -> Path:
    """The fileset of ``analysis`` over the served files: local paths (``base`` None) or the
    URLs ``base`` + the path below ``served``."""
    if analysis == "zpeak":
        if not (served / REAL_FILE).is_file():
            pytest.skip(f"real NanoAOD files not found at {REAL_DATA}")
        fs = {"dimuon": {"files": {str(served / REAL_FILE): "Events"},
                         "metadata": {"process": "data_singlemuon", "era": "2018", "is_data": True}}}
    else:
        fs = json.loads((served / "gen" / "fileset.json").read_text())
    if base is not None:
        for entry in fs.values():
            entry["files"] = {f"{base}/{Path(path).relative_to(served)}": tree for path, tree in entry["files"].items()}
    out.write_text(json.dumps(fs, indent=1))
    return out


def _process_args(analysis: str, fileset: Path, out: Path, executor: str = "iterative",
                  chunksize: str = CHUNKSIZE) -> list[str]:
    proc = ["--analysis", "zpeak"] if analysis == "zpeak" else ["--processor", "signal"]
    return ["process", *proc, "--fileset", str(fileset), "--out", str(out), "--executor", executor,
            "--workers", "2", "--chunksize", chunksize, "--xrootd-timeout", "20", "--quiet"]


def _run_in_process(args: list[str]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old real files lack NanoAOD branches the schema knows
        return run.main(args)


def _local_output(served: Path, tmp: Path, analysis: str, chunksize: str = CHUNKSIZE) -> Path:
    out = tmp / f"{analysis}_{chunksize}.coffea"
    if not out.exists():
        fs = _write_fileset(served, tmp / f"{analysis}.json", analysis, None)
        assert _run_in_process(_process_args(analysis, fs, out, chunksize=chunksize)) == 0
    return out


@pytest.fixture(scope="module")
def local_outputs(served, tmp_path_factory) -> dict:
    """analysis -> the output of the local files (iterative executor, CHUNKSIZE)."""
    tmp = tmp_path_factory.mktemp("local")
    analyses = ["zpeak", "signal"] if (served / REAL_FILE).is_file() else ["signal"]
    return {analysis: _local_output(served, tmp, analysis) for analysis in analyses}


def _assert_identical(local: Path, remote: Path, scheme: str) -> None:
    from coffea.util import load

    result = compare_files(local, remote, remote.name)
    assert result.status == IDENTICAL, "\n".join(result.differences)
    out = load(str(remote))
    files = {c["file"] for c in out["chunks"]["processed"]}
    assert files and all(f.startswith(f"{scheme}://") for f in files), files  # read remotely
    assert not out["chunks"]["skipped"]
    assert any(h.values().sum() > 0 for h in out["histograms"].values())


# --- XRootD ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xrootd(served) -> str:
    """``root://127.0.0.1:PORT//SERVED``: Debian's XRootD daemon exporting the served
    directory, accepting connections from localhost only; stopped after the module."""
    binary = shutil.which("xrootd")
    if binary is None:
        pytest.skip("the xrootd daemon is not installed (Debian package xrootd-server: apt-get install xrootd-server)")
    for module in ("XRootD", "fsspec_xrootd"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the [xrootd] extra: pip install -e \".[xrootd]\")")
    work = Path(tempfile.mkdtemp(prefix="softtrack-xrootd-"))
    work.chmod(0o777)  # the daemon (nobody, under root) writes its admin files here
    port = _free_port()
    cfg = work / "xrootd.cfg"
    cfg.write_text(f"all.export {served}\nxrd.port {port}\nxrd.allow host localhost\n"
                   f"all.adminpath {work}\nall.pidpath {work}\n")
    log = work / "xrootd.log"
    cmd = [binary, "-c", str(cfg)] + (["-R", "nobody"] if os.geteuid() == 0 else [])
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=work)
    try:
        _wait_listening(port, proc, log)
        yield f"root://127.0.0.1:{port}/{served}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("analysis", ["zpeak", "signal"])
def test_xrootd_equals_local(xrootd, served, local_outputs, tmp_path, analysis):
    fs = _write_fileset(served, tmp_path / "fileset.json", analysis, xrootd)
    from processors.fileset import load_fileset

    assert all(f.startswith(xrootd) for e in load_fileset(fs).values() for f in e["files"])  # kept verbatim
    out = tmp_path / f"{analysis}.coffea"
    assert _run_in_process(_process_args(analysis, fs, out)) == 0
    _assert_identical(local_outputs[analysis], out, "root")


def test_xrootd_futures_workers(xrootd, served, tmp_path):
    """Worker processes open the root:// files themselves (one chunk per file, so that the
    order in which the workers' results merge cannot change a sum)."""
    fs = _write_fileset(served, tmp_path / "fileset.json", "signal", xrootd)
    out = tmp_path / "signal.coffea"
    assert _run_in_process(_process_args("signal", fs, out, "futures", chunksize="50000")) == 0
    _assert_identical(_local_output(served, tmp_path, "signal", "50000"), out, "root")


def test_xrootd_missing_file(xrootd, served, tmp_path, capsys):
    """A URL the server does not have: one line naming it and the fix, nothing written."""
    fs = _write_fileset(served, tmp_path / "fileset.json", "signal", xrootd)
    data = json.loads(fs.read_text())
    name = next(iter(data))
    data[name]["files"] = {f"{xrootd}/gen/nope.root": "Events"}
    fs.write_text(json.dumps(data))
    out = tmp_path / "o.coffea"
    assert _run_in_process(_process_args("signal", fs, out)) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{xrootd}/gen/nope.root" in lines[0] and "--skip-bad-files" in lines[0], lines
    assert not out.exists()


# --- HTTP with byte ranges ------------------------------------------------------------------


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single byte ranges (``Range: bytes=a-b``, ``a-``, ``-n``; RFC 9110
    sec. 14), as uproot's fsspec reader asks for them; python's own handler ignores Range."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args):  # quiet
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404, "file not found")
            return None
        size = os.path.getsize(path)
        start, stop, partial = 0, size, False
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if m and (m[1] or m[2]):
            partial = True
            if m[1]:
                start, stop = int(m[1]), (min(int(m[2]) + 1, size) if m[2] else size)
            else:
                start = max(size - int(m[2]), 0)
            if start >= size or start >= stop:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(stop - start)
        self.send_response(206 if partial else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.end_headers()
        return io.BytesIO(body)


@contextlib.contextmanager
def _http_server(directory: Path, context: ssl.SSLContext | None = None):
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(directory), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def http_url(served) -> str:
    """``http://127.0.0.1:PORT`` serving the served directory."""
    with _http_server(served) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def https_url(served, tmp_path_factory):
    """(``https://127.0.0.1:PORT``, the self-signed certificate clients trust)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for the HTTPS server")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with _http_server(served, context) as port:
        yield f"https://127.0.0.1:{port}", cert


def test_range_server(served, http_url):
    """The test server honours byte ranges (so the HTTP tests read what uproot asks for)."""
    data = (served / "gen" / "fileset.json").read_bytes()
    for header, status, body in (("bytes=5-14", 206, data[5:15]), ("bytes=-7", 206, data[-7:]),
                                 ("bytes=10-", 206, data[10:]), (None, 200, data)):
        req = urllib.request.Request(f"{http_url}/gen/fileset.json", headers={"Range": header} if header else {})
        with urllib.request.urlopen(req) as r:
            assert (r.status, r.read()) == (status, body)


@pytest.mark.parametrize("analysis", ["zpeak", "signal"])
def test_http_equals_local(http_url, served, local_outputs, tmp_path, analysis):
    fs = _write_fileset(served, tmp_path / "fileset.json", analysis, http_url)
    out = tmp_path / f"{analysis}.coffea"
    assert _run_in_process(_process_args(analysis, fs, out)) == 0
    _assert_identical(local_outputs[analysis], out, "http")


def test_https_equals_local(https_url, served, local_outputs, tmp_path):
    """``run.py process`` over https://, the server's certificate trusted through SSL_CERT_FILE
    (a user's CA bundle; read when the process starts, hence a new process): both analyses
    in it, each equal to its local output."""
    url, cert = https_url
    calls = []
    for analysis in local_outputs:
        fs = _write_fileset(served, tmp_path / f"{analysis}.json", analysis, url)
        calls.append(_process_args(analysis, fs, tmp_path / f"{analysis}.coffea"))
    script = ("import sys, warnings, run\nwarnings.simplefilter('ignore')\n"
              f"sys.exit(max(run.main(a) for a in {calls!r}))")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                       env=_env() | {"SSL_CERT_FILE": str(cert)}, timeout=300)
    assert r.returncode == 0, r.stderr
    for analysis, out in local_outputs.items():
        _assert_identical(out, tmp_path / f"{analysis}.coffea", "https")


def test_timeout_reaches_preflight_and_workers(served, tmp_path, monkeypatch):
    """RunOptions.xrootd_timeout is uproot's open timeout in the preflight and in the chunks
    the workers read (processors.execution)."""
    import uproot

    from processors import execution, runner

    src = served / "gen" / "fileset.json"
    entry = next(iter(json.loads(src.read_text()).values()))
    (path,) = entry["files"]
    copy = tmp_path / "f.root"  # not in the preflight's cache
    shutil.copy(path, copy)
    seen = []
    real_open = uproot.open

    def recording_open(p, **kwargs):
        seen.append(kwargs.get("timeout"))
        return real_open(p, **kwargs)

    monkeypatch.setattr(uproot, "open", recording_open)
    fileset = {"d": {"files": {str(copy): "Events"}, "metadata": entry["metadata"]}}
    opts = runner.RunOptions(executor="iterative", xrootd_timeout=7, status=False, cache_dir="")
    good, skipped = runner.preflight(fileset, False, opts)
    assert not skipped and seen == [7]
    task = execution.Task(index=0, dataset="d", filename=str(copy), treename="Events", entrystart=0, entrystop=10,
                          fileuuid="", usermeta=entry["metadata"])
    with execution._open(task, execution.Settings(timeout=opts.xrootd_timeout).timeout):
        pass
    assert seen == [7, 7]
