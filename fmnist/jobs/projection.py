"""A trained run's test images in 2-D: its last hidden layer's PCA and t-SNE, and the raw pixels' t-SNE
once per store (fmnist.inside.project_run), kept in the run's folder where the Inside page reads them
(fmnist.projection)."""

from fmnist.inside_charts import InsideError
from fmnist.jobs.derived import Derived
from fmnist.runs import ModelFileError, Run, RunKind


class Projection(Derived):
    kind = RunKind.PROJECTION
    known_errors = (ModelFileError, InsideError)

    def name(self, parent_id: int, settings: dict) -> str:
        return f"t-SNE of #{parent_id}"

    def work(self, store, run: Run, dataset, report) -> dict:
        from fmnist.inside import project_run

        return {"seconds": project_run(store, run.parent_id, dataset, report)}
