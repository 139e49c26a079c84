"""A run's spec trained again with N seeds, each scored on the test set: how much of its test
accuracy is chance. It chooses nothing: the spread describes a model already chosen."""

from fmnist.jobs.repeat import Repeat
from fmnist.runs import RunKind


class Seeds(Repeat):
    kind = RunKind.SEEDS
    repeats_range = (1, 20)
    repeats_word = "seeds"
    name_template = "{k} seeds of #{id}"
