"""A regular (non-editable) install works: the default policy ships as package data.

The wheel is built from this checkout and installed with pip into a fresh virtualenv, not in
editable mode; its dependencies come from the test environment's site-packages (a .pth file, so
no download). From a directory far from the checkout, `touchflow replay` must run with the
bundled default config, and its code must come from the installed copy.
"""

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
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
