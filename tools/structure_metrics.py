"""Structure figures of a relyscope checkout: modules, largest function, imports made inside
functions, files that spell several method names in one literal, and the subpackage import
graph. Used for the before/after of restructures:

    python -m tools.structure_metrics [REPO_DIR]      # default: this checkout
"""

from __future__ import annotations

import ast
import collections
import re
import sys
from pathlib import Path

METHOD_NAMES = ("attention", "loo", "ablation", "tools", "tracing")
GENERATED = re.compile(r"^(_proto|v1)(/|$)")


def modules(package: Path) -> list[Path]:
    return [p for p in sorted(package.rglob("*.py"))
            if not GENERATED.match(p.relative_to(package).as_posix())]


def literal_names(node: ast.AST) -> list[str]:
    """Strings a literal holds: a tuple/list/set's items, a dict's keys, a string's words."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [e.value for e in node.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    if isinstance(node, ast.Dict):
        return [k.value for k in node.keys
                if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.split(r"[ ,]+", node.value)
    return []


def measure(repo: Path) -> str:
    package = repo / "relyscope"
    files = modules(package)
    largest = (0, "")
    inner_imports = 0
    edges: set[tuple[str, str]] = set()
    spelling: set[str] = set()
    for path in files:
        rel = path.relative_to(package)
        top = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > largest[0]:
                    largest = (length, f"{rel}:{node.name}")
                inner_imports += sum(isinstance(sub, ast.Import | ast.ImportFrom)
                                     for sub in ast.walk(node))
            if (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("relyscope.")):
                target = node.module.split(".")[1]
                if target != top:
                    edges.add((top, target))
            if sum(name in literal_names(node) for name in METHOD_NAMES) >= 3:
                spelling.add(rel.as_posix())
    graph: dict[str, list[str]] = collections.defaultdict(list)
    for source, target in sorted(edges):
        graph[source].append(target)
    lines = [f"modules: {len(files)}",
             f"largest function: {largest[1]} ({largest[0]} lines)",
             f"imports inside functions: {inner_imports}",
             f"files spelling 3+ method names in a literal: {len(spelling)}: {sorted(spelling)}",
             "subpackage import graph:"]
    lines += [f"  {source} -> {', '.join(targets)}" for source, targets in sorted(graph.items())]
    return "\n".join(lines)


if __name__ == "__main__":
    print(measure(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1]))
