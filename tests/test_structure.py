"""The shape of the code: no import circle, a pure side that never reaches Keras, the app apart
from its tests and benchmarks, the package installed, and ruff clean with the project's own settings."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

PACKAGE = ROOT / "fmnist"
# The Keras side: build, fit, predict, load. Everything else in fmnist/ is the pure side.
KERAS_SIDE = {"fmnist.network", "fmnist.training", "fmnist.prediction", "fmnist.keras_start", "fmnist.search",
              "fmnist.inside", "fmnist.export", "fmnist.outlier_check"}
ML_LIBRARIES = {"keras", "tensorflow", "jax", "torch"}
# The command line's package and the run kinds' (fmnist.jobs): they reach the Keras side inside their
# commands and `execute` only, so listing, stopping or creating runs stays light.
CLI = "fmnist.cli"
BENCHMARKS = ROOT / "benchmarks"
# The tests' own modules as the tests import them (helpers, browser, servers, conftest, test_*):
# tests/ is on the tests' path only, so an import of one elsewhere works only under pytest, if at all.
TEST_MODULES = {path.stem for path in (ROOT / "tests").glob("*.py")} | {"tests"}
JOBS = "fmnist.jobs"
# What the pages share (fmnist.app): like the pages, it reaches the Keras side only inside the functions
# that load a model, never as it loads.
APP = "fmnist.app"
# The layers, top to bottom: a module imports only from its own layer or those below it.
UPPER_LAYERS = (("fmnist.__main__", "fmnist.cli", APP), ("fmnist.services",), ("fmnist.jobs",))


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def in_cli(module: str) -> bool:
    return in_package(module, CLI) or in_package(module, JOBS)


def lazy_about_keras(module: str) -> bool:
    """The layers that may import the Keras side inside functions only: the command line, the kinds, the pages' own modules."""
    return in_cli(module) or in_package(module, APP)


def imports_of(path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    return imported_names(ast.walk(ast.parse(path.read_text())))


def top_level_imports(path) -> set[str]:
    """The modules a file imports as it loads: its module-level import statements only."""
    return imported_names(ast.parse(path.read_text()).body)


def imported_names(nodes) -> set[str]:
    """The modules these statements import; `from a import b` names a and a.b, since b may be a module."""
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def package_modules() -> dict[str, Path]:
    """Every fmnist module by its dotted name, the command line's (fmnist.cli, fmnist.cli.train_commands...) included."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts != ("fmnist", "__init__"):
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def benchmark_modules() -> dict[str, Path]:
    return {f"benchmarks.{path.stem}" if path.stem != "__init__" else "benchmarks": path for path in BENCHMARKS.glob("*.py")}


def app_files() -> dict[str, Path]:
    """What `streamlit run` and `python -m fmnist` load: the package, the pages and the app's script."""
    pages = {f"pages/{path.name}": path for path in (ROOT / "pages").glob("*.py")}
    return {**package_modules(), **pages, "streamlit_app.py": ROOT / "streamlit_app.py"}


def resolves(name: str, modules: dict[str, Path]) -> bool:
    """`name` is one of `modules`, or a name imported from one (`from a import b` gives a.b)."""
    return name in modules or name.rpartition(".")[0] in modules


def touches_sys_path(path: Path) -> bool:
    return any(isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys"
               for node in ast.walk(ast.parse(path.read_text())))


def import_graph() -> dict[str, set[str]]:
    """fmnist module -> the fmnist modules and outside top-level packages it imports."""
    modules = package_modules()
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
        if module in KERAS_SIDE or lazy_about_keras(module):
            continue
        assert not targets & ML_LIBRARIES, f"{module} imports {targets & ML_LIBRARIES}"
        assert not targets & KERAS_SIDE, f"{module} imports the Keras side: {targets & KERAS_SIDE}"
    # The CLI and the run kinds load the engine only once a training may start (`--help`, `runs` and `stop`
    # stay light): every module of fmnist/cli/ and fmnist/jobs/ imports Keras and the Keras side inside functions only.
    cli_modules = {name: path for name, path in package_modules().items() if lazy_about_keras(name)}
    assert {CLI, f"{CLI}.train_commands", JOBS, f"{JOBS}.train"} <= set(cli_modules), "the command line's and the kinds' modules exist"
    for module, path in cli_modules.items():
        top_level = top_level_imports(path)
        heavy = top_level & KERAS_SIDE | {name for name in top_level if name.split(".")[0] in ML_LIBRARIES}
        assert not heavy, f"{module} imports {heavy} at its top: the CLI imports the Keras side inside its commands only"


def test_arrows_only_go_down_the_layers():
    """pages/cli -> services -> jobs -> engine, store, worker -> pure side: nothing below imports what is above it."""
    graph = import_graph()
    def in_layers(module: str, layers) -> bool:
        return any(in_package(module, package) for layer in layers for package in layer)

    for module, targets in graph.items():
        layers = [rank for rank, layer in enumerate(UPPER_LAYERS) if in_layers(module, [layer])]
        above = UPPER_LAYERS[:layers[0]] if layers else UPPER_LAYERS
        reaching_up = {target for target in targets if in_layers(target, above)}
        assert not reaching_up, f"{module} imports {reaching_up}, a layer above it"


# What only the application layer (fmnist.services) does: pages call it rather than these.
STORE_WRITES = ("create_run", "rename(", ".delete(", "request_stop", "requeue", "finish(", "set_pid", "claim_slot", "add_person", "set_setting")


def test_pages_act_through_the_services_only():
    for page in [*(ROOT / "pages").glob("*.py"), ROOT / "streamlit_app.py"]:
        names = imports_of(page)
        assert not {n for n in names if in_package(n, "fmnist.worker") or in_package(n, JOBS)}, \
            f"{page.name} imports the worker or the run kinds: it should call fmnist.services"
        text = page.read_text()
        for write in STORE_WRITES:
            calls = [line for line in text.splitlines() if f"store.{write}" in line]
            assert not calls, f"{page.name} writes to the store itself: {calls}"


# Issue 25: a run kind was spread over 14 files. A kind added since is its module in fmnist/jobs/ and a
# line in fmnist.runs.RunKind (the registry, where its name is defined, not referred to); outside its
# module it is named only by the service that starts it and the pure module that reads what it made.
KIND_FOOTPRINTS = {
    "PROJECTION": {"fmnist/jobs/projection.py", "fmnist/services.py", "fmnist/projection.py"},
    "EXPORT": {"fmnist/jobs/export.py", "fmnist/services.py", "fmnist/export_formats.py"},
}


def test_a_new_run_kind_is_one_module_and_one_registry_line_named_only_by_its_service():
    runs_module = (PACKAGE / "runs.py").read_text()
    for name, expected in KIND_FOOTPRINTS.items():
        assert len(re.findall(rf"^    {name} = \"\w+\"", runs_module, re.M)) == 1, f"RunKind.{name}: one line in the registry"
        named = {str(path.relative_to(ROOT)) for path in app_files().values() if re.search(rf"\bRunKind\.{name}\b", path.read_text())}
        assert named == expected, f"RunKind.{name} is named in {sorted(named)}"
        module = PACKAGE / "jobs" / f"{name.lower()}.py"
        assert f"kind = RunKind.{name}" in module.read_text(), f"{module.name} defines the kind"


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


def test_the_app_never_imports_the_tests_and_the_benchmarks_only_inside_a_command():
    files = app_files()
    assert {"fmnist.cli.bench_commands", "pages/train.py", "streamlit_app.py"} <= set(files), "the app's files exist"
    for name, path in files.items():
        everywhere = imports_of(path)
        assert not {n for n in everywhere if n.split(".")[0] in TEST_MODULES}, f"{name} imports the tests"
        assert not touches_sys_path(path), f"{name} changes sys.path"
        assert not {n for n in top_level_imports(path) if n.split(".")[0] == "benchmarks"}, \
            f"{name} imports the benchmarks as it loads: the library runs without them"
        if not in_cli(name):
            assert not {n for n in everywhere if n.split(".")[0] == "benchmarks"}, f"{name} imports the benchmarks"
    # The CLI's bench commands import a bench once they run: each module they name is there.
    benches = benchmark_modules()
    named = {n for path in files.values() for n in imports_of(path) if n.startswith("benchmarks.")}
    assert {"benchmarks.bench", "benchmarks.watch_bench"} <= named
    assert all(resolves(n, benches) for n in named), sorted(n for n in named if not resolves(n, benches))


def test_the_benchmarks_import_the_library_never_the_tests():
    benches, library = benchmark_modules(), package_modules()
    assert {"benchmarks.bench", "benchmarks.browser", "benchmarks.watch_bench"} <= set(benches), "the benchmarks exist"
    for name, path in benches.items():
        names = imports_of(path)
        assert not {n for n in names if n.split(".")[0] in TEST_MODULES}, f"{name} imports the tests"
        assert not touches_sys_path(path), f"{name} changes sys.path"
        # A bench runs rarely: a library module it names that is gone fails here, not in someone's measurement.
        unknown = {n for n in names if n.startswith("fmnist.") and not resolves(n, library)}
        unknown |= {n for n in names if n.startswith("benchmarks.") and not resolves(n, benches)}
        assert not unknown, f"{name} imports {unknown}, which are not there"
    # `python -m fmnist bench` itself only starts each side's process and compares figures: a side
    # picks its Keras backend in its own process, which an imported Keras would have fixed already.
    bench = {n.split(".")[0] for n in imports_of(benches["benchmarks.bench"])} | imports_of(benches["benchmarks.bench"])
    assert not bench & (ML_LIBRARIES | KERAS_SIDE), bench & (ML_LIBRARIES | KERAS_SIDE)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by ./setup.sh --test")
def test_ruff_is_clean_with_the_projects_settings():
    result = subprocess.run(["ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
