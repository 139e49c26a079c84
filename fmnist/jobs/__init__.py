"""The run kinds, one module each, and the registry that finds them.

Each kind is a member of fmnist.runs.RunKind and the module of the same name here (RunKind.CV is
fmnist/jobs/cv.py), whose JobKind subclass (fmnist.jobs.base) says what a run of it is: adding a
kind is that module plus one line in RunKind. fmnist.jobs.process runs any of them in its own
process (`python -m fmnist.jobs RUN_ID`), and fmnist.services creates and starts them for the pages
and the command line.
"""

import importlib
from collections.abc import Iterator, Mapping

from fmnist.jobs.base import JobKind
from fmnist.runs import Run, RunKind


def load(kind: RunKind) -> JobKind:
    """The JobKind that the kind's module, fmnist.jobs.<kind>, defines for it."""
    module = importlib.import_module(f"{__name__}.{kind}")
    found = [value for value in vars(module).values()
             if isinstance(value, type) and issubclass(value, JobKind) and value.__dict__.get("kind") == kind]
    if len(found) != 1:
        raise ImportError(f"{module.__name__} should define one JobKind with kind = RunKind.{kind.name}; it defines {len(found)}")
    return found[0]()


class Registry(Mapping):
    """Every RunKind's JobKind, each module imported when its kind is first asked for: a training's
    process loads the training kind, not the export's converters and pandas or the projection's charts
    (a second of a cold start on a busy machine)."""

    def __init__(self):
        self.loaded: dict[RunKind, JobKind] = {}

    def __getitem__(self, kind: RunKind) -> JobKind:
        kind = RunKind(kind)
        if kind not in self.loaded:
            self.loaded[kind] = load(kind)
        return self.loaded[kind]

    def __iter__(self) -> Iterator[RunKind]:
        return iter(RunKind)

    def __len__(self) -> int:
        return len(RunKind)


KINDS = Registry()


def kind_of(run: Run | RunKind | str) -> JobKind:
    """The kind of a run (or a kind's name); ValueError for a kind this version does not know."""
    return KINDS[RunKind(run.kind if isinstance(run, Run) else run)]


# Short names for the kinds the services, the command line and the tests start most (any other: kind_of).
TRAIN, CV, SEEDS, SEARCH = (KINDS[kind] for kind in (RunKind.TRAIN, RunKind.CV, RunKind.SEEDS, RunKind.SEARCH))
