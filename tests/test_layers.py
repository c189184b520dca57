"""The package's layout shows its layers, and the layers hold: imports run down only (cli -> experiments,
sweep, report -> launch -> algorithms -> learning -> models -> data -> core), lazy imports included; at
most five modules at the top of the package; no module over 600 lines (docs/development.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "offline_mbrl"
# the layer of each folder, bottom up; the top-level modules sit where their imports put them
LAYERS = {
    "core": 0,
    "provenance": 0.5,  # file-and-line references: core-level values
    "data": 1,
    "models": 2,
    "config": 2.5,  # TrainConfig holds the dynamics config
    "algorithm_spec": 2.6,
    "learning": 3,
    "algorithms": 4,
    "launch": 5,
    "experiments": 6,
    "sweep": 6,
    "report": 6,
    "cli": 7,
}


def _layer(module: str) -> float:
    parts = module.split(".")
    return LAYERS.get(parts[1], 9) if len(parts) > 1 else 9


def _runtime_imports(path: Path) -> list[tuple[str, int]]:
    """Every `offline_mbrl` import of a file, inside functions too, but not under `if TYPE_CHECKING`."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and id(node) not in typing_only:
            if node.module == "offline_mbrl":
                found += [(f"offline_mbrl.{a.name}", node.lineno) for a in node.names]
            elif node.module.startswith("offline_mbrl."):
                found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import) and id(node) not in typing_only:
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("offline_mbrl.")]
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out.append((".".join(parts).removesuffix(".__init__"), path))
    return out


def test_imports_run_down_the_layers_only():
    upward = [
        f"{module} -> {target} (line {line})"
        for module, path in _modules()
        if module != "offline_mbrl"
        for target, line in _runtime_imports(path)
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from offline_mbrl.cli.main import app\n")
    assert _runtime_imports(bad) == [("offline_mbrl.cli.main", 2)]
    assert _layer("offline_mbrl.cli.main") > _layer("offline_mbrl.models.dynamics")


def test_every_folder_and_top_module_has_a_layer_and_the_top_is_small():
    top_modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert len(top_modules) <= 5, top_modules
    assert set(top_modules + folders) - {"resources"} <= set(LAYERS), set(top_modules + folders) - set(LAYERS)


def test_no_module_passes_600_lines():
    long = {m: n for m, p in _modules() if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}
