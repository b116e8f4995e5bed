"""A regular (non-editable) install works: the default policy and the scorecard page ship as
package data, and the demo's subpackage ships with the product (`touchflow demo`).

The wheel is built from this checkout and installed with pip into a fresh virtualenv, not in
editable mode; its dependencies come from the test environment's site-packages (a .pth file, so
no download). From a directory far from the checkout, `touchflow replay` must run with the
bundled default config, and its code must come from the installed copy; the metrics port of the
installed copy must serve the scorecard page and its files (the chart library included).
"""

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
PAGE_FILES = (
    "connectors/page/scorecard.html",
    "connectors/page/scorecard.js",
    "connectors/page/scorecard.css",
    "connectors/page/vendor/chart.umd.min.js",
    "connectors/page/vendor/chart.js-LICENSE.md",
)
DEMO_FILES = ("dataflows/demo/__init__.py", "dataflows/demo/replay_demo.py")
# Run by the installed interpreter: serve the page from the installed package and fetch it.
SERVE_PAGE = """
import sys, urllib.request
import connectors.web as web
from connectors.metrics import Metrics
server = web.serve(Metrics(), 0, lambda: None, scorecard=lambda: None)
try:
    for path in ("/scorecard", "/scorecard/assets/scorecard.js", "/scorecard/assets/scorecard.css",
                 "/scorecard/assets/chart.umd.min.js"):
        with urllib.request.urlopen(server.url + path, timeout=10) as reply:
            print(path, reply.status, len(reply.read()))
finally:
    server.stop()
print(web.__file__)
"""
EVENTS = b"""\
{"id":"1","type":"page_view","prospect":"p1","ts":"2026-03-02T15:00:00Z","url":"/pricing"}
{"id":"2","type":"form_submit","prospect":"p2","ts":"2026-03-02T15:00:00Z"}
"""


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=240, check=False)


def test_a_regular_install_replays_with_the_bundled_config(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ next to the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__")
    for package in ("operators", "connectors", "dataflows", "config"):
        shutil.copytree(ROOT / package, source / package, ignore=skip)
    wheels = tmp_path / "wheels"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(source)],
        tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr.decode()
    (wheel,) = wheels.glob("touchflow-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert set(PAGE_FILES) <= set(archive.namelist())
        # `touchflow demo` from a regular install: the subpackage is listed in pyproject.toml.
        assert set(DEMO_FILES) <= set(archive.namelist())
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib], tmp_path).stdout.decode().strip())
    deps = sysconfig.get_paths()["purelib"]
    (site / "deps.pth").write_text(deps + "\n")  # bytewax, msgspec, ... from the test env
    installed = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         str(wheel)],
        tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr.decode()
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "events.jsonl").write_bytes(EVENTS)
    show = "import operators.policy as p; print(p.__file__, p.DEFAULT_CONFIG)"
    where = _run([str(python), "-c", show], work)
    assert str(site) in where.stdout.decode(), where.stdout + where.stderr
    assert str(ROOT) not in where.stdout.decode(), "imported from the checkout, not the install"
    replayed = _run([str(env_dir / "bin" / "touchflow"), "replay", "events.jsonl"], work)
    assert replayed.returncode == 0, replayed.stderr.decode()
    # The default policy: a chat invite for the pricing page; for the form, an email (the call
    # needs a phone consent the default policy requires and p2 never gave).
    sent = [(x["prospect"], x["channel"]) for x in map(json.loads, replayed.stdout.splitlines())]
    assert sent == [("p1", "chat"), ("p2", "email")]
    served = _run([str(python), "-c", SERVE_PAGE], work)
    assert served.returncode == 0, served.stderr.decode()
    lines = served.stdout.decode().splitlines()
    assert str(site) in lines[-1], "the page came from the checkout, not the install"
    sizes = {path: int(size) for path, status, size in (x.split() for x in lines[:-1])
             if status == "200"}  # fmt: skip
    vendored = ROOT / "connectors/page/vendor/chart.umd.min.js"
    assert sizes["/scorecard/assets/chart.umd.min.js"] == vendored.stat().st_size
    assert len(sizes) == 4, lines
