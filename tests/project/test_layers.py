"""Imports inside ``segkit/`` flow one way: every module sits in one layer and imports only its own or lower layers.

Each subpackage of ``segkit`` is one layer, named after it; ``LAYER_ORDER`` lists them lowest first, in the order of
the pipeline (docs/design.md draws it). A new module goes into the subpackage whose job it does; a new subpackage
is added to ``LAYER_ORDER`` where it belongs, and ``test_every_module_is_placed`` fails until it is. If a module
needs something from a higher layer, the code is in the wrong place (move the shared part down) rather than the
order being wrong.

The test reads the source with ``ast`` (no imports run): ``import x``, ``from x import y`` (y resolved to a module
where it is one) and relative imports, at module level, inside functions and under ``TYPE_CHECKING`` alike.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SEGKIT = Path(__file__).resolve().parents[2] / "segkit"

LAYER_ORDER = [
    "errors",
    "utils",
    "config",
    "data",
    "models",
    "evaluation",
    "checkpoint",
    "engine",
    "convert",
    "zoo",
    "runtimes",
    "export",
    "quantize",
    "analysis",
    "package",
    "cli",
]

# One entry per subpackage, in the order of the pipeline: config -> data -> model -> (loss, loop) -> evaluation ->
# checkpoint -> export -> quantize. The layer of a subpackage is its name.
LAYERS: dict[str, str] = {f"segkit.{layer}": layer for layer in LAYER_ORDER if layer != "package"}
LAYERS["segkit.__main__"] = "cli"  # `python -m segkit` is the command line
# ``segkit`` itself (segkit/__init__.py) is the lazy public API: it imports nothing at load time, and its names come
# from layers below it, so only the cli may use ``from segkit import ...``; library modules import the defining module.
PACKAGE = "segkit"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SEGKIT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(SEGKIT.rglob("*.py"))}


def layer_of(module: str) -> str | None:
    if module == PACKAGE:
        return "package"
    best = max((key for key in LAYERS if module == key or module.startswith(key + ".")), key=len, default=None)
    return LAYERS[best] if best else None


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _closest(name: str) -> str | None:
    """The module ``name`` refers to: itself or its nearest listed parent (``segkit.x.Y`` -> ``segkit.x``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> dict[str, int]:
    """``{imported segkit module: line}`` for every import statement in ``module``."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in targets:
            if target == "segkit" or target.startswith("segkit."):
                resolved = _closest(target)
                if resolved is not None and resolved != module:
                    found.setdefault(resolved, node.lineno)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_scan_sees_imports():
    """The scan itself works: known edges (inside functions and relative ones) are found, so the checks can fail."""
    assert len(MODULES) > 20
    assert "segkit.models.backbones" in GRAPH["segkit.models.backbones.mobilenetv2"] or any(
        m.startswith("segkit.models.backbones") for m in GRAPH["segkit.models.build"]
    )
    assert any(m.startswith("segkit.models") for m in GRAPH["segkit.models.build"])
    assert "segkit.config" in GRAPH["segkit.models.build"]
    tree = ast.parse("def f():\n    from ..config import Config\n")
    node = tree.body[0].body[0]
    assert _resolve("segkit.models.build", node) == "segkit.config"


def test_every_module_is_placed():
    missing = sorted(m for m in MODULES if layer_of(m) is None)
    assert not missing, (
        f"modules not in tests/test_layers.py's LAYERS: {', '.join(missing)}; "
        f"add each with its layer (one of {', '.join(x for x in LAYER_ORDER if x != 'package')})"
    )


def test_imports_flow_down():
    bad = []
    for module, imports in GRAPH.items():
        src = layer_of(module)
        if src is None:
            continue
        for target, line in sorted(imports.items()):
            dst = layer_of(target)
            if dst is not None and LAYER_ORDER.index(dst) > LAYER_ORDER.index(src):
                bad.append(
                    f"{MODULES[module].relative_to(SEGKIT.parent)}:{line} {module} ({src}) imports {target} ({dst})"
                )
    assert not bad, "imports from a lower layer into a higher one:\n" + "\n".join(bad)


def _find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_find_cycles_detects_one():
    assert _find_cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert _find_cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_cycles():
    cycles = _find_cycles(GRAPH)
    assert not cycles, "import cycles (each group imports itself through the others):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_backbones_import_nothing_else_from_segkit():
    allowed = ("segkit.models.backbones", "segkit.utils")
    bad = [
        f"{module} imports {target}"
        for module, imports in GRAPH.items()
        if module == allowed[0] or module.startswith(allowed[0] + ".")
        for target in imports
        if not any(target == a or target.startswith(a + ".") for a in allowed)
    ]
    assert not bad, (
        "segkit.models.backbones must stand alone (a detector imports it without config or data):\n" + "\n".join(bad)
    )


def test_importing_backbones_loads_no_config_or_data():
    """At run time too: ``import segkit.models.backbones`` runs the package __init__ files, which must stay light."""
    code = "import sys, segkit.models.backbones; print('\\n'.join(m for m in sys.modules if m.startswith('segkit')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    loaded = out.split()
    heavy = [m for m in loaded if layer_of(m) not in ("utils", "models", "package")]
    assert not heavy, f"import segkit.models.backbones also loaded {', '.join(heavy)}"


def test_public_api_names_come_from_lower_layers():
    """``segkit.<name>`` (segkit/__init__.py's lazy table) resolves to modules below the package facade."""
    import segkit

    for name, module in segkit._API.items():
        assert module in MODULES, f"segkit.{name} points at {module}, which does not exist"
        assert LAYER_ORDER.index(layer_of(module)) < LAYER_ORDER.index("package"), (name, module)
        assert callable(getattr(segkit, name)) or isinstance(getattr(segkit, name), type)


def test_nothing_loose_at_the_top_of_the_package():
    """Every module lives in the subpackage of its role; the top holds only the lazy public API and the error base."""
    top = ("__init__.py", "errors.py", "__main__.py")  # __main__.py: `python -m segkit`, three lines into segkit.cli
    loose = sorted(p.name for p in SEGKIT.glob("*.py") if p.name not in top)
    assert not loose, f"modules loose at the top of segkit/: {', '.join(loose)}; move each into its role's subpackage"
    packages = sorted(p.name for p in SEGKIT.iterdir() if (p / "__init__.py").exists())
    unplaced = [name for name in packages if name not in LAYER_ORDER]
    assert not unplaced, f"subpackages missing from LAYER_ORDER: {', '.join(unplaced)}"
