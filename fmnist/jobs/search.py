"""A search over a space of stacks (fmnist.search): Optuna asks, the trials train as runs of kind
trial in the training queue, their validation accuracy decides. The search's own process only asks
and tells, so it waits in a queue of its own and stays on this machine when trials go to a cluster."""

import json
from dataclasses import replace

from fmnist.backends import default_setting, resolve
from fmnist.jobs.base import JobKind
from fmnist.models import ConvBlock
from fmnist.runs import SEARCH_QUEUE, Run, RunKind
from fmnist.search_space import SearchSpace, placeholder_spec, validate_space


class Search(JobKind):
    kind = RunKind.SEARCH
    queue = SEARCH_QUEUE
    local_only = True

    def create(self, store, space: SearchSpace, name: str | None = None, pid: int | None = None, pid_started: str | None = None,
               **owner) -> int:
        """A queued search holding its space; it waits for other searches to end."""
        return store.create_run(placeholder_spec(space), name=name or "search", train_limit=space.images, kind=self.kind,
                                queue=self.queue, pid=pid, pid_started=pid_started, space_json=json.dumps(space.to_dict()),
                                backend_setting=default_setting(), **owner)

    def resume(self, store, search_id: int, trials: int | None = None, minutes: float | None = None) -> None:
        """Queue an ended search again (stopped, interrupted, or finished with a new budget): its
        finished trials stay, and its study goes on from them. trials and minutes, if given, replace
        its budget. ValueError for no such search or a budget out of range."""
        search = store.get(search_id)
        if search is None or search.kind != self.kind:
            raise ValueError(f"no search {search_id}")
        space = SearchSpace.from_dict(search.space)
        if trials is not None or minutes is not None:
            space = validate_space(replace(space, trials=trials if trials is not None else space.trials,
                                           minutes=minutes if minutes is not None else space.minutes))
            store.update_search(search_id, space_json=json.dumps(space.to_dict()))
        store.requeue(search_id)

    def backend_for(self, run: Run) -> str:
        """Its trials train in its own processes, so auto goes by what it may try: TensorFlow when its
        space allows conv blocks."""
        spec = run.spec
        if run.space and run.space.get("conv_blocks", (0, 0))[1] > 0:
            spec = replace(spec, conv=(ConvBlock(16),))
        return resolve(spec, run.backend_setting)

    def execute(self, store, run: Run, progress=None, on_trial=None, dataset=None) -> dict:
        from fmnist.search import run_search

        return run_search(store, run.id, dataset=dataset, on_trial=on_trial)

    def help(self, store, run: Run) -> None:
        """Another process's part of a running search (FMNIST_MAX_PARALLEL > 1): more trials at once."""
        from fmnist.search import help_search

        help_search(store, run.id)
