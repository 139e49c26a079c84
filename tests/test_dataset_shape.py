"""The dataset's description is handed down: the engine trains, scores and classifies a dataset of
another image shape and class count through the same functions the training process, Evaluate and
Classify use, with nothing about Fashion-MNIST's 28×28 or ten classes built in."""

import numpy as np
import pytest

from fmnist.charts import probability_bars
from fmnist.compare_charts import confusion_heatmap
from fmnist.data import Dataset, DatasetError
from fmnist.dataset import FASHION_MNIST, DatasetInfo
from fmnist.evaluation import confusion_matrix, per_class_scores, top_k
from fmnist.models import ConvBlock, DenseLayer, ModelSpec, layer_plan
from fmnist.prediction import load_model, predict_image, probabilities_on_test_set
from fmnist.store import RunStore
from fmnist.training import train_run
from fmnist.worker import try_start

# Not square, so a height and a width swapped anywhere shows.
SHAPES = DatasetInfo(
    name="Shapes", image_shape=(12, 10), class_names=("bar", "column", "corner", "ring"),
    train_size=400, test_size=120, origin="drawn with numpy for this test",
)


def draw(label: int) -> np.ndarray:
    """A light figure on black, as in Fashion-MNIST: a bar, a column, a corner block or a ring."""
    image = np.zeros(SHAPES.image_shape, np.float32)
    if label == 0:
        image[5:7, 1:9] = 1
    elif label == 1:
        image[2:10, 4:6] = 1
    elif label == 2:
        image[:4, :4] = 1
    else:
        image[2:10, 2:8] = 1
        image[4:8, 4:6] = 0
    return image


def shapes_dataset(seed: int = 0) -> Dataset:
    """The four figures, each shifted by up to a pixel and noisy, as uint8 images like the real ones."""
    rng = np.random.default_rng(seed)

    def images(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(count) % SHAPES.num_classes
        rng.shuffle(labels)
        drawn = np.stack([np.roll(draw(int(label)), rng.integers(-1, 2, size=2), axis=(0, 1)) for label in labels])
        noisy = np.clip(drawn * rng.uniform(0.6, 1.0, (count, 1, 1)) + rng.normal(0, 0.15, drawn.shape), 0, 1)
        return (noisy * 255).astype(np.uint8), labels.astype(np.uint8)

    x_train, y_train = images(SHAPES.train_size)
    x_test, y_test = images(SHAPES.test_size)
    return Dataset(x_train, y_train, x_test, y_test, source="numpy", info=SHAPES)


def test_a_dataset_whose_images_do_not_match_its_description_is_refused():
    dataset = shapes_dataset()
    with pytest.raises(DatasetError, match=r"x_train holds \(12, 10\) images, Fashion-MNIST has \(28, 28\)"):
        Dataset(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, source="numpy")  # described as Fashion-MNIST


def test_another_shape_and_class_count_trains_evaluates_and_classifies(home):
    dataset = shapes_dataset()
    store = RunStore()
    # A conv block (its pooling halves 12×10 to 6×5) and a dense layer: both paths of the layer plan.
    spec = ModelSpec(layers=(DenseLayer(16),), conv=(ConvBlock(4, pool=True),), epochs=6, batch_size=16, val_split=0.1)
    run_id = store.create_run(spec)
    assert try_start(store, run_id, max_parallel=1)

    summary = train_run(store, run_id, dataset)  # what the training process runs

    assert summary["status"] == "finished", store.get(run_id).error
    chance = 1 / SHAPES.num_classes
    assert summary["test_acc"] > chance + 0.4, f"learnt the figures: {summary['test_acc']:.2f} against chance {chance:.2f}"

    model = load_model(store, run_id)  # as Classify and Evaluate load it: from the run's file, safe mode on
    assert tuple(model.input_shape) == (None, 12, 10, 1) and tuple(model.output_shape) == (None, 4)
    assert model.count_params() == sum(layer.params for layer in layer_plan(spec, SHAPES)), "the plan's count is exact here too"
    assert [layer.params for layer in layer_plan(spec)] != [layer.params for layer in layer_plan(spec, SHAPES)]

    # Evaluate: the stored probabilities are read back (of this shape), scored per class, drawn.
    probs = probabilities_on_test_set(store, run_id, dataset, load=lambda _: pytest.fail("the stored probabilities are read"))
    assert probs.shape == (SHAPES.test_size, SHAPES.num_classes)
    cm = confusion_matrix(dataset.y_test, probs.argmax(axis=1), SHAPES.num_classes)
    assert cm.shape == (4, 4) and cm.sum() == SHAPES.test_size
    assert np.trace(cm) / cm.sum() == pytest.approx(summary["test_acc"])
    scores = per_class_scores(cm, SHAPES.class_names)
    assert list(scores["class"]) == list(SHAPES.class_names) and scores["images"].sum() == SHAPES.test_size
    heatmap = confusion_heatmap(cm, class_names=SHAPES.class_names).data[0]
    assert list(heatmap.x) == list(heatmap.y) == list(SHAPES.class_names)

    # Classify: one image in 0-1, its probabilities, the likeliest names and the bars.
    ring = draw(3)
    image_probs = predict_image(model, ring)
    assert image_probs.shape == (4,) and image_probs.sum() == pytest.approx(1, abs=1e-5)
    (name, probability), *others = top_k(image_probs, 3, SHAPES.class_names)
    assert name in SHAPES.class_names and name not in FASHION_MNIST.class_names
    assert name == "ring", f"a clean ring: {dict(zip(SHAPES.class_names, image_probs.round(2)))}"
    assert [other for other, _ in others] == [SHAPES.class_names[i] for i in np.argsort(-image_probs)[1:3]]
    [bars] = probability_bars(image_probs, SHAPES.class_names).data
    assert list(bars.y) == list(SHAPES.class_names)
