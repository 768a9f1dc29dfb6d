"""The package's shape, read from its source: ctypes only in the kernel seam."""
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
