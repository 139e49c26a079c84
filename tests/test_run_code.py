"""The code of a run (fmnist.run_code, `python -m fmnist code`): a standalone script in plain Keras that
builds exactly the run's model and, run as written, gives the run's test accuracy."""

import ast
import json
import re
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from fmnist.models import ConvBlock, DenseLayer, ModelSpec, count_params, dense_spec, layer_plan
from fmnist.run_code import CodeError, code_of, notebook, script
from fmnist.runs import RunKind
from fmnist.search_space import SearchSpace, placeholder_spec
from fmnist.store import RunStore

from helpers import run_cli

SPECS = {
    "dense": dense_spec([64, 32], epochs=2),
    "everything": ModelSpec(
        layers=(DenseLayer(48, activation="gelu", dropout=0.2, batch_norm=True),),
        conv=(ConvBlock(8, kernel_size=3, batch_norm=True, dropout=0.1), ConvBlock(16, pool=False)),
        augment=True, lr_schedule="cosine", mixed_precision=True, learning_rate=0.002, epochs=3, batch_size=64, val_split=0.2,
        seed=7, early_stopping=True, patience=2, checkpoint=True),
    "plateau": dense_spec([16], epochs=1, lr_schedule="plateau"),
}


@pytest.mark.parametrize("name", SPECS)
def test_the_script_builds_exactly_the_runs_model_without_fmnist(home, name):
    spec = SPECS[name]
    store = RunStore()
    run = store.get(store.create_run(spec, name=name, train_limit=1000, backend_setting="tensorflow"))
    text = script(run)
    tree = ast.parse(text)  # valid Python
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"gzip", "math", "os", "pathlib", "keras", "numpy"}, imported
    # Run its model section (everything before the data is read, then the model) and compare with the engine's plan.
    model_code = text[text.index("keras.utils.set_random_seed"):text.index("model.summary()")]
    result = subprocess.run([sys.executable, "-c", "import os\nos.environ['KERAS_BACKEND'] = 'tensorflow'\nimport keras\n" + model_code +
                             "print([layer.name for layer in model.layers], model.count_params())"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names, params = ast.literal_eval(result.stdout.strip().splitlines()[-1].replace("] ", "], "))
    assert names == [layer.name for layer in layer_plan(spec)] and params == count_params(spec)


def test_the_notebook_holds_the_same_code_as_the_script(home):
    store = RunStore()
    run = store.get(store.create_run(SPECS["dense"], name="nb"))
    cells = json.loads(notebook(run))["cells"]
    assert json.loads(notebook(run))["nbformat"] == 4
    code = [cell["source"] for cell in cells if cell["cell_type"] == "code"]
    assert code and all(part in script(run) for part in code)
    assert [cell["cell_type"] for cell in cells[:2]] == ["markdown", "code"]


def test_runs_without_one_model_say_why(home):
    store = RunStore()
    space = SearchSpace(trials=2, minutes=1.0)
    search_id = store.create_run(placeholder_spec(space), kind=RunKind.SEARCH, space_json=json.dumps(space.to_dict()))
    with pytest.raises(CodeError, match="is a search job, not one model"):
        code_of(store, search_id)
    with pytest.raises(CodeError, match="There is no run 42"):
        code_of(store, 42)
    missing = run_cli("code", "42")
    assert missing.returncode == 2 and "There is no run 42" in missing.stderr


def test_the_script_and_the_notebook_run_as_written_give_the_runs_test_accuracy(home, tmp_path):
    """Trained by the app's engine (the CLI), then by the script alone and by the notebook in a Jupyter
    kernel (nbclient, as `jupyter nbconvert --execute` runs one), on the same backend: within half a point."""
    trained = run_cli("train", "--layers", "64", "--epochs", "2", "--limit", "6000", "--backend", "jax", "--name", "take me home")
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout.strip().splitlines()[-1])
    out = tmp_path / "run.py"
    written = run_cli("code", str(summary["run_id"]), "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert f"{summary['test_acc']:.4f}" in out.read_text(), "the script names the accuracy it should reach"
    result = subprocess.run([sys.executable, str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"^test accuracy: (\d\.\d{4})$", result.stdout, re.MULTILINE).group(1))
    assert abs(accuracy - summary["test_acc"]) <= 0.005, (accuracy, summary["test_acc"])

    notebook_path = tmp_path / "run.ipynb"
    written = run_cli("code", str(summary["run_id"]), "--notebook", "--out", str(notebook_path))
    assert written.returncode == 0, written.stderr
    book = nbformat.read(notebook_path, as_version=4)
    NotebookClient(book, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(output.get("text", "") for cell in book.cells if cell.cell_type == "code" for output in cell.outputs)
    accuracy = float(re.search(r"^test accuracy: (\d\.\d{4})$", printed, re.MULTILINE).group(1))
    assert abs(accuracy - summary["test_acc"]) <= 0.005, (accuracy, summary["test_acc"])


def test_a_run_still_training_or_without_a_model_says_so(home):
    store = RunStore()
    running = store.create_run(SPECS["dense"], name="busy")
    with pytest.raises(CodeError, match=f"Run #{running} is still queued: its code is ready when it ends"):
        code_of(store, running)
    store.finish(running, "cancelled")
    with pytest.raises(CodeError, match=f"Run #{running} cancelled and kept no model"):
        code_of(store, running)
