"""k-fold cross-validation of a run's spec: stratified folds of the training images, each scored on
the fold it held out (the seed notebook's "cross validation score"); never the test set."""

from fmnist.jobs.repeat import Repeat
from fmnist.runs import RunKind


class CrossValidation(Repeat):
    kind = RunKind.CV
    repeats_range = (2, 20)
    repeats_word = "folds"
    name_template = "{k}-fold CV of #{id}"
