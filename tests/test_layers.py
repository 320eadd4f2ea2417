"""The floors of the code base: ``envs/`` stands without the trainer, no module imports
itself back through others, and the trainer reads the env surface instead of probing for it.

Imports are read from the source (module-level and inside functions alike): a function-level
import that closes a circle is still a circle."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("envs", "jaxrl_arena")


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imports(path: Path, known) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found.update(n for n in names if n in known)
    return found


def graph():
    mods = modules()
    return {m: imports(p, mods) - {m} for m, p in mods.items()}


def test_envs_import_nothing_of_the_trainer():
    bad = {m: sorted(t for t in targets if t.startswith("jaxrl_arena"))
           for m, targets in graph().items() if m.startswith("envs")}
    assert not {m: t for m, t in bad.items() if t}, bad


def test_no_import_circles():
    edges = graph()
    # A package's __init__ re-exporting its own submodules is not a circle.
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in edges.items()}
    circles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for t in sorted(edges[m]):
            if state.get(t) == "open":
                circles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_trainer_reads_the_declared_env_surface_without_probing_or_patching():
    probe = re.compile(r"\b(hasattr|getattr)\(\s*(self\.)?env\b")
    patch = re.compile(r"^\s*(self\.)?env\.\w+\s*=[^=]", re.MULTILINE)
    found = []
    for path in (REPO / "jaxrl_arena").rglob("*.py"):
        text = path.read_text()
        found += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in probe.finditer(text)]
        found += [f"{path.relative_to(REPO)}: {m.group(0).strip()}" for m in patch.finditer(text)]
    assert not found, found


def test_the_checker_sees_a_circle_and_a_layer_breach(tmp_path):
    """The import reader is not blind: it finds function-level imports."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from jaxrl_arena.train import make_train\n    import envs.base\n")
    assert imports(src, modules()) == {"jaxrl_arena.train", "envs.base"}
