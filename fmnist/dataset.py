"""What the app's dataset is, said once: its name, image shape, classes, sizes and where it comes from.

Pure Python, imported by both sides: the model's input and output layers, the scores, the charts
and the pages' sentences about the data all derive from a DatasetInfo instead of repeating its
figures. The real images come from fmnist.data, which checks them against FASHION_MNIST; a
Dataset carries its own DatasetInfo, so the engine (fmnist.training, fmnist.prediction,
fmnist.evaluation) works on any dataset of grayscale images it is handed.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple[int, int]  # (height, width) of one grayscale image
    class_names: tuple[str, ...]  # label i is class_names[i]
    train_size: int
    test_size: int
    origin: str  # where the images come from, in a sentence people can act on

    def __post_init__(self):
        if len(self.image_shape) != 2 or min(self.image_shape) < 1:
            raise ValueError(f"{self.name}: image_shape is (height, width), got {self.image_shape!r}")
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"{self.name}: at least two distinct class names, got {self.class_names!r}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """What a model takes per image: (height, width, 1 channel)."""
        return (*self.image_shape, 1)

    @property
    def pixels(self) -> int:
        return self.image_shape[0] * self.image_shape[1]

    @property
    def size_text(self) -> str:
        """The image size as people write it, e.g. 28×28."""
        return "×".join(map(str, self.image_shape))


# Zalando's Fashion-MNIST, as Debian's dataset-fashion-mnist package and the original four files hold it.
FASHION_MNIST = DatasetInfo(
    name="Fashion-MNIST",
    image_shape=(28, 28),
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    train_size=60000,
    test_size=10000,
    origin=("Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist), a folder of the four "
            "original files named by FMNIST_DATA, or Keras' download"),
)
