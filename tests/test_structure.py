"""The shape of the code: no import circle, a pure side that never reaches Keras, the package
installed, and ruff clean with the project's own settings."""

import ast
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT

PACKAGE = ROOT / "fmnist"
# The Keras side: build, fit, predict, load. Everything else in fmnist/ is the pure side.
KERAS_SIDE = {"fmnist.network", "fmnist.training", "fmnist.prediction", "fmnist.bench_fit", "fmnist.keras_start", "fmnist.search",
              "fmnist.search_bench", "fmnist.inside", "fmnist.inside_bench", "fmnist.export", "fmnist.outlier_check",
              "fmnist.photo_bench"}
ML_LIBRARIES = {"keras", "tensorflow", "jax", "torch"}


def imports_of(path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def import_graph() -> dict[str, set[str]]:
    """fmnist module -> the fmnist modules and outside top-level packages it imports."""
    modules = {f"fmnist.{path.stem}": path for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    graph = {}
    for name, path in modules.items():
        names = imports_of(path)
        graph[name] = {n for n in names if n in modules} | {n.split(".")[0] for n in names if not n.startswith("fmnist")}
    return graph


def test_the_library_has_no_import_circle():
    graph = import_graph()
    internal = {name: {n for n in targets if n in graph} for name, targets in graph.items()}
    visiting, done = [], set()

    def visit(module):
        if module in visiting:
            raise AssertionError("import circle: " + " -> ".join(visiting[visiting.index(module):] + [module]))
        if module in done:
            return
        visiting.append(module)
        for target in sorted(internal[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(internal):
        visit(module)


def test_the_pure_side_never_imports_keras_or_the_keras_side():
    graph = import_graph()
    assert KERAS_SIDE <= set(graph), "the Keras side's modules exist"
    for module, targets in graph.items():
        if module in KERAS_SIDE or module == "fmnist.__main__":
            continue
        assert not targets & ML_LIBRARIES, f"{module} imports {targets & ML_LIBRARIES}"
        assert not targets & KERAS_SIDE or module == "fmnist.ui", f"{module} imports the Keras side: {targets & KERAS_SIDE}"
    # The CLI loads the engine only once a training may start (`runs` and `stop` stay light).
    tree = ast.parse((PACKAGE / "__main__.py").read_text())
    top_level = {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert not top_level & KERAS_SIDE, "the CLI imports the Keras side inside its commands only"


def test_pages_reach_the_keras_side_only_where_a_model_runs():
    for page in (ROOT / "pages").glob("*.py"):
        names = {n.split(".")[0] for n in imports_of(page)} | imports_of(page)
        keras_side = names & (KERAS_SIDE | ML_LIBRARIES)
        if page.stem == "classify":
            assert keras_side == {"fmnist.prediction"}, keras_side
        else:
            assert not keras_side, f"pages/{page.name} imports {keras_side}"


def test_the_package_is_installed_and_runs_from_any_folder(tmp_path):
    from importlib.metadata import distribution

    assert distribution("fashion-mnist-studio").version
    result = subprocess.run([sys.executable, "-m", "fmnist", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "train" in result.stdout, result.stderr


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by ./setup.sh --test")
def test_ruff_is_clean_with_the_projects_settings():
    result = subprocess.run(["ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
