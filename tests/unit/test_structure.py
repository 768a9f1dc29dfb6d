"""The package's shape, read from its source: ctypes only in the kernel seam; an import graph without a
circle, where the commands sit on top of the core and nothing in the core reaches up to them."""
import ast
import os


PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "ocirun")


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def test_ctypes_only_in_the_kernel_seam():
    users = []
    for dirpath, _, files in os.walk(PKG):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                if any(m.split(".")[0] == "ctypes" for m in _imports(path)):
                    users.append(os.path.relpath(path, PKG))
    assert users and all(u.startswith("kernel" + os.sep) for u in users), users


# ---- the import graph ----------------------------------------------------------------------------------
def _modules() -> dict[str, str]:
    """Every module of the package: dotted name → file."""
    out = {}
    for dirpath, _, files in os.walk(PKG):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), os.path.dirname(PKG))[:-3]
                parts = rel.split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                out[".".join(parts)] = os.path.join(dirpath, name)
    return out


def _type_checking_only(node) -> bool:
    if not isinstance(node, ast.If):
        return False
    return "TYPE_CHECKING" in (getattr(node.test, "id", None), getattr(node.test, "attr", None))


def _walk_runtime(node):
    """ast.walk, without the bodies of ``if TYPE_CHECKING:`` (imports for annotations, never run)."""
    for child in ast.iter_child_nodes(node):
        if _type_checking_only(child):
            yield from (n for stmt in child.orelse for n in [stmt, *_walk_runtime(stmt)])
            continue
        yield child
        yield from _walk_runtime(child)


def _edges(name: str, path: str, modules: dict) -> set[str]:
    """The package modules ``name`` imports, at module level or inside a function (lazy imports count):
    ``from . import x`` names the module ``x`` when there is one, else the package."""
    is_pkg = os.path.basename(path) == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in _walk_runtime(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[:len(base) - (node.level - 1)]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # "ocirun.cgroups.v2.X" → the module that defines it
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    # (A package's __init__ also runs before any of its modules; that edge is the interpreter's, not a
    # choice of the importer, and is not counted.)
    return {name: _edges(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_command_layer(name: str) -> bool:
    return name in ("ocirun.cli", "ocirun.__main__") or name == "ocirun.commands" or \
        name.startswith("ocirun.commands.")


def test_no_import_circle():
    """Lazy (function-level) imports count: a circle broken only by deferring an import is still one
    design knot, and the next module-level import turns it into an ImportError."""
    assert _cycles(_graph()) == []


def test_the_core_does_not_import_the_commands():
    """The core (every module outside ocirun/cli.py, ocirun/__main__.py and ocirun/commands/) is a library:
    it returns values and raises OciError; only the command layer turns those into output and exit codes."""
    wrong = sorted(f"{name} imports {dep}" for name, deps in _graph().items() if not _is_command_layer(name)
                   for dep in deps if _is_command_layer(dep))
    assert wrong == []


def test_the_graph_reader_sees_lazy_and_relative_imports():
    """The two tests above can only fail if the reader finds the edges: check it on known ones."""
    graph = _graph()
    assert "ocirun.cli" in graph["ocirun.__main__"]
    assert "ocirun.sync" in graph["ocirun.launcher"]
    assert "ocirun.kernel.linux" in graph["ocirun.launcher"] or "ocirun.kernel" in graph["ocirun.launcher"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
