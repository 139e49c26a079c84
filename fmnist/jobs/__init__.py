"""The run kinds, one module each, and the registry that finds them.

Adding a kind is one module with a JobKind subclass (fmnist.jobs.base) plus one line in KINDS;
fmnist.jobs.process runs any of them in its own process (`python -m fmnist.jobs RUN_ID`), and
fmnist.services creates and starts them for the pages and the command line.
"""

from fmnist.jobs.base import JobKind
from fmnist.jobs.cv import CrossValidation
from fmnist.jobs.search import Search
from fmnist.jobs.seeds import Seeds
from fmnist.jobs.train import Train
from fmnist.jobs.trial import Trial
from fmnist.runs import Run, RunKind

KINDS: dict[RunKind, JobKind] = {job.kind: job for job in (Train(), CrossValidation(), Seeds(), Search(), Trial())}


def kind_of(run: Run | RunKind | str) -> JobKind:
    """The kind of a run (or a kind's name); KeyError for a kind this version does not know."""
    return KINDS[RunKind(run.kind if isinstance(run, Run) else run)]


TRAIN: Train = KINDS[RunKind.TRAIN]
CV: CrossValidation = KINDS[RunKind.CV]
SEEDS: Seeds = KINDS[RunKind.SEEDS]
SEARCH: Search = KINDS[RunKind.SEARCH]
