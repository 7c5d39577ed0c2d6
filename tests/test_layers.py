"""Imports run one way: every module of the package imports only modules of its own layer or of lower ones, with no
cycle, and an import inside a function says on its line (or the line above its block) why it is there.

The layers are docs/design.md's "Layers" (the order the lead fixed for the restructure); a module belongs to the
layer of the longest prefix of its dotted name that the table lists, so a new module needs no entry unless it starts
a new top-level name. Imports inside functions count like the others: hiding one there does not make it go downward.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "vjepa_tune"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "text", "files", "randomness", "version"),  # 1 foundation
    ("config",),  # 2
    ("data",),  # 3 samples, video, probing, transforms, sources, splits, fingerprints, annotations, dataset, check
    ("synth",),  # 4 synthetic action videos, motions, the pretext task
    ("models",),  # 5 loading, strategies, build, fast_encoder, info
    ("evaluation",),  # 6 metrics, statistics, views, detection
    ("tracking",),  # 7 records, console_log, grid_settings, report, significance, plots, trackers
    ("runs",),  # 8 the run folder: its only owner
    ("training", "pretraining"),  # 9 parts that run models (their recipe modules excepted)
    ("training.recipe", "compare", "inference", "export", "features", "pretraining.recipe", "pretraining.probe",
     "pretraining.command", "demo"),  # 10 recipes (the probe runs train; the command calls the recipe)
    ("cli", "__main__", ""),  # 11 the command line and the package itself ("" is vjepa_tune/__init__.py)
)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The layer of a module (dotted name inside the package, "" for the package itself) by its longest listed
    prefix; a module no prefix names fails the test that lists it."""
    best, found = -1, None
    for number, prefixes in enumerate(LAYERS, start=1):
        for prefix in prefixes:
            matches = module == prefix or (prefix and module.startswith(prefix + "."))
            if matches and len(prefix) > best:
                best, found = len(prefix), number
    if found is None:
        raise LookupError(module)
    return found


def _target(node: ast.ImportFrom | ast.Import, alias: ast.alias, known: set[str]) -> str | None:
    """The package module an import names ("" for the package itself), or None for another package's."""
    if isinstance(node, ast.ImportFrom) and node.level:
        raise AssertionError(f"relative import at line {node.lineno}: the package imports by absolute names")
    name = alias.name if isinstance(node, ast.Import) else node.module or ""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    module = name.removeprefix(PACKAGE).removeprefix(".")
    if isinstance(node, ast.ImportFrom) and f"{module}.{alias.name}".lstrip(".") in known:
        module = f"{module}.{alias.name}".lstrip(".")  # `from vjepa_tune.training import loop` names that module
    return module


def _imports(module: str, tree: ast.Module, known: set[str]) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for alias in child.names:
                    target = _target(child, alias, known)
                    if target is not None:
                        found.append(Import(module, target, child.lineno, in_function))
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inside)

    visit(tree, False)
    return found


def _parsed() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in MODULES.items()}


TREES = _parsed()
IMPORTS = sorted({imp for name, tree in TREES.items() for imp in _imports(name, tree, set(MODULES))},
                 key=lambda i: (i.importer, i.line, i.imported))


def _shown(module: str) -> str:
    return f"{PACKAGE}.{module}" if module else PACKAGE


def test_the_layer_table_names_every_module_of_the_package() -> None:
    unplaced = []
    for module in MODULES:
        try:
            layer_of(module)
        except LookupError:
            unplaced.append(_shown(module))
    assert not unplaced, f"modules in no layer (add their top-level name to LAYERS): {unplaced}"


def test_no_module_imports_a_module_of_a_higher_layer() -> None:
    upward = [
        f"{_shown(i.importer)} (layer {layer_of(i.importer)}) imports {_shown(i.imported)} (layer "
        f"{layer_of(i.imported)}) at line {i.line}{' inside a function' if i.in_function else ''}"
        for i in IMPORTS
        if layer_of(i.imported) > layer_of(i.importer)
    ]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def _cycle(modules: set[str], imports: list[Import]) -> list[str] | None:
    """One import cycle among `modules` (as a path that ends where it starts), or None. Importing a module runs its
    packages' __init__ first: that is Python's order, not an edge."""
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for i in imports:
        if i.imported in modules and i.imported != i.importer:
            edges[i.importer].add(i.imported)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(edges):
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def test_no_modules_import_each_other_in_a_circle() -> None:
    cycle = _cycle(set(MODULES), IMPORTS)
    assert cycle is None, "import cycle: " + " -> ".join(_shown(m) for m in cycle)


def _explained(lines: list[str], tree: ast.Module, line: int) -> bool:
    """An import inside a function says why: a comment on its line, or on the line above the block of imports it
    belongs to (imports one after another, blank lines between them allowed)."""
    import_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            import_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    if "#" in lines[line - 1]:
        return True
    above = line - 1
    while above >= 1 and (not lines[above - 1].strip() or above in import_lines):
        if above in import_lines and "#" in lines[above - 1]:
            return True
        above -= 1
    return above >= 1 and lines[above - 1].strip().startswith("#")


def test_every_import_inside_a_function_says_why_it_is_there() -> None:
    unexplained = []
    for module, tree in TREES.items():
        lines = MODULES[module].read_text(encoding="utf-8").splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)) and not _explained(lines, tree, inner.lineno):
                    unexplained.append(f"{MODULES[module].relative_to(SRC.parent)}:{inner.lineno}: "
                                       f"{lines[inner.lineno - 1].strip()}")
    assert not unexplained, (
        "imports inside functions without a reason (keep them at the top of the module, or say on the line or the "
        "line above why they cannot be: e.g. `# here: the command line starts without torch`):\n"
        + "\n".join(sorted(set(unexplained)))
    )


@pytest.mark.parametrize(
    ("module", "layer"),
    [("errors", 1), ("data.video", 3), ("synth.motions", 4), ("training.recipe", 10), ("training.loop", 9),
     ("pretraining.recipe", 10), ("pretraining.masks", 9), ("cli", 11), ("", 11), ("runs.folder", 8)],
)
def test_a_module_takes_the_layer_of_its_longest_listed_prefix(module: str, layer: int) -> None:
    assert layer_of(module) == layer


def test_the_checks_find_an_upward_import_and_a_cycle_in_code_made_to_have_them() -> None:
    """The checks themselves: an import against the order and a circle of three are reported, by name."""
    made = {
        "data.a": "from vjepa_tune.training import loop\n",
        "runs.b": "def f():\n    from vjepa_tune.runs import c\n",
        "runs.c": "import vjepa_tune.runs.d\n",
        "runs.d": "from vjepa_tune.runs.b import f\n",
    }
    known = {*made, "training.loop"}
    imports = [imp for name, text in made.items() for imp in _imports(name, ast.parse(text), known)]
    assert [(i.importer, i.imported) for i in imports if layer_of(i.imported) > layer_of(i.importer)] == [
        ("data.a", "training.loop")]
    assert [i.in_function for i in imports if i.importer == "runs.b"] == [True]
    assert _cycle(known, imports) == ["runs.b", "runs.c", "runs.d", "runs.b"]
    assert _cycle(known, [i for i in imports if i.importer != "runs.d"]) is None


MAX_MODULE_LINES = 600
"""Issue 16's binding limit (aim for 400): a module longer than this is split by what its parts are about."""


def test_no_module_of_the_package_is_over_600_lines() -> None:
    lengths = {name or PACKAGE: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    too_long = {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"over {MAX_MODULE_LINES} lines: {too_long}"
    assert len(lengths) > 100 and max(lengths.values()) > 400  # the files were read, and the check has teeth
