"""The product never imports the demo (`dataflows.demo`): it runs, and ships, without it.

Two checks, because each misses what the other sees. At run time, a fresh interpreter imports
every product module (operators, connectors, dataflows outside `dataflows.demo`) and replays a
small file through `touchflow replay`; no `dataflows.demo` module may be loaded afterwards. In the
source, every import statement of the product, those inside functions included, is read: the
only one that names the demo is the `demo` command's in `dataflows/cli.py`.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("operators", "connectors", "dataflows")
DEMO = "dataflows.demo"
EVENTS = b"""\
{"id":"1","type":"page_view","prospect":"p1","ts":"2026-03-02T15:00:00Z","url":"/pricing"}
{"id":"2","type":"form_submit","prospect":"p2","ts":"2026-03-02T15:00:00Z"}
"""
# Run in a fresh interpreter: import the product (and `extra`), replay, report what was loaded.
PROBE = """
import importlib, json, pkgutil, sys
import operators, connectors, dataflows
demo, extra, events = sys.argv[1], sys.argv[2:-1], sys.argv[-1]
product = []
def walk(path, prefix):  # not pkgutil.walk_packages: it imports every package it enters
    for m in pkgutil.iter_modules(path, prefix):
        if m.name != demo:
            product.append(m.name)
            if m.ispkg:
                walk([m.module_finder.path + "/" + m.name.rsplit(".", 1)[-1]], m.name + ".")
for package in (operators, connectors, dataflows):
    walk(package.__path__, package.__name__ + ".")
for name in product + extra:
    importlib.import_module(name)
from dataflows.cli import main
status = main(["replay", events, "--commands", events + ".out"])
loaded = sorted(n for n in sys.modules if n == demo or n.startswith(demo + "."))
sent = len(open(events + ".out", "rb").read().splitlines())
print(json.dumps({"product": product, "status": status, "sent": sent, "loaded": loaded}))
"""


def _probe(tmp_path: Path, *extra: str) -> dict[str, object]:
    events = tmp_path / "events.jsonl"
    events.write_bytes(EVENTS)
    run = subprocess.run(
        [sys.executable, "-c", PROBE, DEMO, *extra, str(events)],
        cwd=ROOT,
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    result: dict[str, object] = json.loads(run.stdout.decode().splitlines()[-1])
    return result


def test_the_product_imports_and_replays_without_loading_the_demo(tmp_path: Path) -> None:
    result = _probe(tmp_path)
    product = result["product"]
    assert isinstance(product, list)
    # The walk found the product: an empty walk would pass the check below for nothing.
    for name in ("dataflows.cli", "dataflows.live", "dataflows.replay", "dataflows.report"):
        assert name in product
    assert (result["status"], result["sent"]) == (0, 2), result
    assert result["loaded"] == [], f"the product imported the demo: {result['loaded']}"


def test_the_probe_sees_a_demo_import(tmp_path: Path) -> None:
    """The run-time check can fail: importing one demo module shows up in what it reports."""
    result = _probe(tmp_path, "dataflows.demo.replay_demo")
    loaded = result["loaded"]
    assert isinstance(loaded, list)
    assert {"dataflows.demo", "dataflows.demo.replay_demo", "dataflows.demo.simulate"} <= set(
        loaded
    )


def _demo_imports(path: Path) -> list[int]:
    """Lines of `path` whose import statement names the demo package (any depth, any form)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(name == DEMO or name.startswith(DEMO + ".") for name in names):
            lines.append(node.lineno)
    return lines


def test_only_the_demo_command_imports_the_demo() -> None:
    demo_dir = ROOT / "dataflows" / "demo"
    found = {
        str(path.relative_to(ROOT)): lines
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        if demo_dir not in path.parents and (lines := _demo_imports(path))
    }
    assert list(found) == ["dataflows/cli.py"], found
    tree = ast.parse((ROOT / "dataflows" / "cli.py").read_text())
    in_demo_command = {
        inner.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "args.command == 'demo'"
        for inner in ast.walk(node)
        if isinstance(inner, ast.ImportFrom)
    }
    assert set(found["dataflows/cli.py"]) <= in_demo_command, "cli.py imports the demo elsewhere"
    assert _demo_imports(demo_dir / "live_demo.py"), "the source check sees a demo import"
