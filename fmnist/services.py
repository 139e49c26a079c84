"""What people do with runs, each action checking the person's rights and limits once.

The pages and the command line call these, never the store's writes or the worker: starting a
training, a cross-validation or seed job, a search (new or resumed), a run's t-SNE projection or an
export of its model; stopping, renaming and deleting a run; opening, closing and deleting a class
challenge and submitting a run to one; a teacher's pausing and resuming the queue, stopping every
run, and the class leaderboard as CSV. Each
takes the `Actor` (who acts, and the per-person limit and caps that apply to them:
fmnist.access.Actor) and raises what a person can read: AccessError (not theirs), LimitError (too
many runs, or beyond a teacher's cap on a run: check_caps), ValueError (bad input, SpecError
included), ClusterError (a cluster that cannot take runs), RuntimeError (a run that is busy),
ChallengeError (a challenge or a submission refused). Nothing is written when one of them is raised.

The command line acts as this machine's admin (`Actor.local()`) and trains the runs it creates in
its own process: `process=` gives that process's (pid, start time), and nothing is spawned.
"""

import threading
import time
from dataclasses import replace

import numpy as np

from fmnist import class_view, cluster, jobs
from fmnist.access import LOCAL_ADMIN, AccessError, Actor, check_may_manage
from fmnist.backends import default_setting
from fmnist.challenges import Challenge, ChallengeError, Constraints, Submission
from fmnist.estimates import ALL_TRAINING_IMAGES, TimeEstimate, speeds_here, time_here
from fmnist.jobs.process import start
from fmnist.jobs.repeat import Repeat
from fmnist.leaderboard import seed_spec
from fmnist.models import SEED_STACKS, ModelSpec, count_params
from fmnist.queue_eta import Standing, ordinal, standing
from fmnist.runs import ACTIVE, LimitError, Run, RunKind, RunStatus
from fmnist.search_space import SearchSpace, most_params, validate_space
from fmnist.store import QUEUE_PAUSED, QUEUE_SLOTS, RunStore
from fmnist.worker import max_parallel, stop_run

# A search a student starts or resumes (someone with a per-person limit) ends within this budget:
# the server has one search slot, which nobody should hold for a day (a teacher may).
STUDENT_SEARCH_MINUTES = 60.0
STUDENT_SEARCH_TRIALS = 200


# What a refused action raises: its message is for the person who tried it (pages show it as it is).
REFUSED = (AccessError, LimitError, ChallengeError, cluster.ClusterError, ValueError, RuntimeError)


def run_to_manage(store: RunStore, actor: Actor, run_id: int, action: str) -> Run:
    """The run, if the actor may `action` it (its owner or a teacher); AccessError otherwise, and for a run that is gone."""
    run = store.get(run_id)
    if run is None:
        raise AccessError(f"There is no run {run_id}: it was deleted, or never existed.")
    check_may_manage(actor.person, run, action)
    return run


def process_fields(process: tuple[int, str | None] | None) -> dict:
    return {} if process is None else {"pid": process[0], "pid_started": process[1]}


# --- the caps a teacher sets ([sharing] in secrets.toml: fmnist.access.Caps) ---

def check_caps(store: RunStore, actor: Actor, spec: ModelSpec, train_limit: int | None, backend_setting: str,
               repeats: int = 1) -> dict:
    """A run within the caps on the actor's runs (a student's: teachers and this machine's own user have
    none), or LimitError naming each cap it passes and what is allowed. Minutes are checked by the time
    runs of its kind took on this machine (fmnist.estimates; a run of a kind never measured passes) and
    held by the training itself, which stops at the cap: the settings that carry it to the run are returned."""
    caps = actor.caps_in_force
    if not caps:
        return {}
    minutes = minutes_text = None
    if caps.max_minutes is not None:
        estimate = time_here(spec, speeds_here(store.list_runs()), backend_setting, train_limit)
        if estimate.seconds is not None:
            expected = TimeEstimate(estimate.seconds * repeats, estimate.measured, estimate.runs)
            minutes, minutes_text = expected.seconds / 60, expected.text()
    refusal = caps.refusal(spec.epochs, train_limit or ALL_TRAINING_IMAGES, count_params(spec), minutes, minutes_text)
    if refusal:
        raise LimitError(refusal)
    return {"settings": {"max_minutes": caps.max_minutes}} if caps.max_minutes is not None else {}


def check_search_caps(actor: Actor, space: SearchSpace) -> None:
    """A search within the caps: its trials' epochs and images, the largest stack it may try, its minutes."""
    caps = actor.caps_in_force
    if not caps:
        return
    unbounded = space.minutes is None
    refusal = caps.refusal(space.epochs, space.images, most_params(space) if caps.max_params else None,
                           float("inf") if unbounded else space.minutes, "no limit in minutes" if unbounded else f"{space.minutes:g}",
                           asked={"max_epochs": "this search's trials train for", "max_images": "its trials train on",
                                  "max_params": "it may try stacks of up to", "max_minutes": "it may run for"})
    if refusal:
        raise LimitError(refusal)


# --- starting work ---

def start_training(store: RunStore, actor: Actor, spec: ModelSpec, name: str | None = None, train_limit: int | None = None,
                   backend_setting: str | None = None, process: tuple[int, str | None] | None = None) -> int:
    """Queue a training and give it its own process (or `process`'s); returns the run id."""
    backend_setting = backend_setting or default_setting()
    capped = check_caps(store, actor, spec, train_limit, backend_setting)
    cluster.ready_for_runs()  # a cluster that cannot be reached refuses (ClusterError) before anything is written
    run_id = jobs.TRAIN.create(store, spec, name=name, train_limit=train_limit, backend_setting=backend_setting,
                               **process_fields(process), **actor.owner_fields(), **capped)
    if process is None:
        start(store, run_id)
    return run_id


def start_repeat(store: RunStore, actor: Actor, run_id: int, kind: RunKind, repeats: int,
                 process: tuple[int, str | None] | None = None) -> int:
    """Queue a cross-validation (kind cv) or seed job (seeds) on a finished training's settings; returns
    the job's id. Only the run's owner or a teacher may: a job on someone else's run would keep
    them from deleting it, and they could not stop it."""
    kind = jobs.kind_of(kind)
    if not isinstance(kind, Repeat):
        raise ValueError(f"{kind.kind} is not a job on a run (cv or seeds)")
    run = run_to_manage(store, actor, run_id, "cross-validate" if kind.kind == RunKind.CV else "repeat")
    capped = check_caps(store, actor, run.spec, run.train_limit, run.backend or run.backend_setting or "auto", repeats)
    cluster.ready_for_runs()
    job_id = kind.create(store, run_id, repeats, **process_fields(process), **actor.owner_fields(), **capped)
    if process is None:
        start(store, job_id)
    return job_id


def check_search_budget(actor: Actor, space: SearchSpace) -> None:
    """A student's search ends within STUDENT_SEARCH_MINUTES and STUDENT_SEARCH_TRIALS."""
    if not actor.limited:
        return
    if space.minutes is None or space.minutes > STUDENT_SEARCH_MINUTES:
        raise LimitError(f"A search may run for at most {STUDENT_SEARCH_MINUTES:g} minutes when the app is shared "
                         f"(a teacher's may run longer): set Minutes to {STUDENT_SEARCH_MINUTES:g} or fewer.")
    if space.trials is not None and space.trials > STUDENT_SEARCH_TRIALS:
        raise LimitError(f"A search may try at most {STUDENT_SEARCH_TRIALS} stacks when the app is shared: "
                         f"set Trials to {STUDENT_SEARCH_TRIALS} or fewer.")


def start_search(store: RunStore, actor: Actor, space: SearchSpace, name: str | None = None,
                 process: tuple[int, str | None] | None = None) -> int:
    """Queue a search over space; returns its id. It waits for other searches to end."""
    space = validate_space(space)
    check_search_budget(actor, space)
    check_search_caps(actor, space)
    cluster.ready_for_runs()  # its trials go there
    search_id = jobs.SEARCH.create(store, space, name=name, **process_fields(process), **actor.owner_fields())
    if process is None:
        start(store, search_id)
    return search_id


def resume_search(store: RunStore, actor: Actor, search_id: int, trials: int | None = None, minutes: float | None = None,
                  process: tuple[int, str | None] | None = None) -> None:
    """Queue an ended search again, with a new budget if given: the owner's or a teacher's, within the
    owner's limit on runs queued or running, as a new search would be."""
    search = run_to_manage(store, actor, search_id, "resume")
    if search.kind != RunKind.SEARCH:
        raise ValueError(f"no search {search_id}")
    space = SearchSpace.from_dict(search.space)
    resumed = validate_space(replace(space, trials=trials if trials is not None else space.trials,
                                     minutes=minutes if minutes is not None else space.minutes))
    check_search_budget(actor, resumed)
    check_search_caps(actor, resumed)
    if actor.limited:
        active = sum(run.owner == search.owner and not run.derived for run in store.list_runs(statuses=ACTIVE))
        if active >= actor.max_runs:
            raise LimitError(f"You have {active} trainings queued or running, the most one person may have "
                             f"({actor.max_runs}): wait for one to end, or stop one, then resume this search.")
    cluster.ready_for_runs()
    jobs.SEARCH.resume(store, search_id, trials=trials, minutes=minutes)
    if process is None:
        start(store, search_id)
    else:
        store.set_pid(search_id, *process)


def train_best_of_search(store: RunStore, actor: Actor, search_id: int, epochs: int) -> int:
    """Train a search's best trial's settings on all training images, scored on the test set once."""
    from fmnist.studies import best_trial_run

    best = best_trial_run(store, search_id)
    if best is None:
        raise ValueError(f"search #{search_id} has no finished trial yet")
    return start_training(store, actor, replace(best.spec, epochs=int(epochs)), name=f"best of search #{search_id}")


def train_seed_stacks(store: RunStore, actor: Actor) -> tuple[list[int], str | None]:
    """Queue the seed notebook's four stacks (ten epochs, all images), one training each, skipping a
    stack already queued or training. Returns the new run ids, and why the rest were not queued when
    the actor's limit stopped them."""
    active = [run.spec for run in store.list_runs(statuses=ACTIVE) if run.kind == RunKind.TRAIN and run.train_limit is None]
    run_ids = []
    for name, widths in SEED_STACKS.items():
        spec = seed_spec(widths)
        if spec not in active:
            try:
                run_ids.append(start_training(store, actor, spec, name=name))
            except LimitError as e:
                return run_ids, str(e)
    return run_ids, None


# --- managing runs ---

def stop(store: RunStore, actor: Actor, run_id: int) -> RunStatus:
    """Stop a running run at its next batch (it keeps what it learnt) or cancel a queued one; returns its new status."""
    run_to_manage(store, actor, run_id, "stop")
    return stop_run(store, run_id)


def rename(store: RunStore, actor: Actor, run_id: int, name: str) -> None:
    run_to_manage(store, actor, run_id, "rename")
    store.rename(run_id, name)


def delete(store: RunStore, actor: Actor, run_id: int) -> None:
    """Delete a run that is not training, with its jobs, files and (for a search) its study.
    RuntimeError when it or one of its jobs is queued or training."""
    run = run_to_manage(store, actor, run_id, "delete")
    if run.kind == RunKind.SEARCH:
        from fmnist.studies import delete_search

        delete_search(store, run_id)
    else:
        store.delete(run_id)


# --- work on a trained run's model: its projection, its exports (fmnist.jobs.derived) ---

_starting = threading.Lock()


def start_derived(store: RunStore, actor: Actor, run_id: int, kind, action: str, settings: dict,
                  process: tuple[int, str | None] | None) -> int:
    """Queue a run of a derived kind on run_id's model and give it its own process; returns its id, or
    that of the same work already queued or running for the run. Only the run's owner or a teacher
    may, as for a cross-validation: a job on someone else's run would keep them from deleting it, and
    they could not stop it. No cap applies (caps bound trainings), and it counts towards nobody's
    limit on runs (fmnist.runs.DERIVED_QUEUE)."""
    problem = kind.problem(store, run_id)
    if problem:
        raise ValueError(problem)
    run_to_manage(store, actor, run_id, action)
    with _starting:  # two tabs of one server asking at once (Inside queues a t-SNE as it draws): one run
        if process is None and (running := kind.active_for(store, run_id, settings)) is not None:
            return running.id
        job_id = kind.create(store, run_id, settings, **process_fields(process), **actor.owner_fields())
    if process is None:
        start(store, job_id)
    return job_id


def start_projection(store: RunStore, actor: Actor, run_id: int, process: tuple[int, str | None] | None = None) -> int:
    """Queue the t-SNE of a finished training's last hidden layer for the test images (and of the raw
    pixels, once per store), kept with the run where the Inside page reads it; returns the projection's run id."""
    return start_derived(store, actor, run_id, jobs.kind_of(RunKind.PROJECTION), "start a t-SNE of", {}, process)


def export(store: RunStore, actor: Actor, run_id: int, variant, out: str | None = None,
           process: tuple[int, str | None] | None = None) -> int:
    """Queue the conversion of a finished training's model to variant (fmnist.export_formats.VARIANTS) and its
    check, kept with the run where the Leaderboard offers it (out: also copied there, for the command line);
    returns the export's run id. How it ends is the run's: finished, or failed with what went wrong."""
    settings = {"variant": variant.key} | ({"out": str(out)} if out else {})
    return start_derived(store, actor, run_id, jobs.kind_of(RunKind.EXPORT), "export", settings, process)


# --- class challenges (fmnist.challenges) ---

def open_challenge(store: RunStore, actor: Actor, title: str, constraints: Constraints, deadline: float,
                   submissions_per_person: int, now: float | None = None) -> int:
    """Open a challenge; returns its id. A teacher may, and so may this machine's own user (a learner
    setting themselves one); AccessError for a student, ChallengeError for a past deadline or
    constraints no run could meet."""
    if not actor.person.admin:
        raise AccessError("Only a teacher may open a challenge.")
    return store.challenges.open(title, constraints, deadline, submissions_per_person, actor.person.id, actor.person.name, now)


def challenge_to_manage(store: RunStore, actor: Actor, challenge_id: int, action: str) -> Challenge:
    """The challenge, if the actor may `action` it (who opened it, or a teacher); AccessError otherwise."""
    challenge = store.challenges.get(challenge_id)
    if challenge is None:
        raise AccessError(f"There is no challenge {challenge_id}: it was deleted, or never existed.")
    if not (actor.person.admin or actor.person.id == challenge.opened_by):
        raise AccessError(f"Only who opened “{challenge.title}” or a teacher may {action} it.")
    return challenge


def close_challenge(store: RunStore, actor: Actor, challenge_id: int, now: float | None = None) -> None:
    """End a challenge now: no more submissions, and its final ranking is revealed."""
    challenge = challenge_to_manage(store, actor, challenge_id, "close")
    if challenge.ended(now):
        raise ChallengeError(f"“{challenge.title}” has ended already.")
    store.challenges.close(challenge_id, now)


def delete_challenge(store: RunStore, actor: Actor, challenge_id: int) -> None:
    """Delete a challenge and its submissions; the runs stay."""
    challenge_to_manage(store, actor, challenge_id, "delete")
    store.challenges.delete(challenge_id)


def submit_to_challenge(store: RunStore, actor: Actor, challenge_id: int, run_id: int, labels: np.ndarray,
                        now: float | None = None) -> Submission:
    """Submit one of the actor's own trainings, scored against the test labels on both parts of the
    test images; the submission as its submitter may see it (no private score). AccessError for a
    run that is not theirs (a teacher submits their own runs too), ChallengeError for everything
    fmnist.challenges.ChallengeStore.submit refuses."""
    now = time.time() if now is None else now
    run = store.get(run_id)
    if run is None:
        raise AccessError(f"There is no run {run_id}: it was deleted, or never existed.")
    if (run.owner or LOCAL_ADMIN.id) != actor.person.id:
        raise AccessError(f"Run #{run_id} is not yours: only your own runs can be submitted.")
    return store.challenges.submit(challenge_id, run, actor.person.id, actor.person.name, store.probs_path(run_id), labels, now)


# --- a teacher's view of the class (pages/class_view.py) ---

def check_teacher(actor: Actor, action: str) -> None:
    """A teacher (or this machine's own user) may; AccessError for a student."""
    if not actor.person.admin:
        raise AccessError(f"Only a teacher may {action}.")


def pause_queue(store: RunStore, actor: Actor, now: float | None = None) -> None:
    """Pause the queue: queued runs keep their places and none starts (fmnist.store.RunStore.claim_slot)
    until it is resumed; running runs go on. Pausing a paused queue changes nothing."""
    check_teacher(actor, "pause the queue")
    if store.queue_paused() is None:
        store.set_setting(QUEUE_PAUSED, {"by": actor.person.name, "since": time.time() if now is None else now})


def resume_queue(store: RunStore, actor: Actor) -> None:
    """Resume a paused queue: its runs start in the order they had."""
    check_teacher(actor, "resume the queue")
    store.set_setting(QUEUE_PAUSED, None)


def stop_all(store: RunStore, actor: Actor) -> list[int]:
    """Stop every run: the running at their next batch (each keeps what it learnt), the queued at once;
    a search's trials with their search. Returns the ids of the runs asked to stop."""
    check_teacher(actor, "stop every run")
    active = store.list_runs(statuses=ACTIVE)
    stopping = {run.id for run in active}
    asked = []
    for run in active:
        if run.kind == RunKind.TRIAL and run.parent_id in stopping:
            continue  # stops with its search
        try:
            stop_run(store, run.id)
        except KeyError:
            continue  # deleted meanwhile
        asked.append(run.id)
    return asked


def class_leaderboard_csv(store: RunStore, actor: Actor) -> str:
    """Every training of the class, whose and how it did, as CSV (fmnist.class_view.LEADERBOARD_COLUMNS)."""
    check_teacher(actor, "download the class leaderboard")
    return class_view.leaderboard_csv(store.list_runs())


# --- where a queued run stands ---


def queue_standing(store: RunStore, run: Run, runs: list[Run] | None = None) -> Standing:
    """Where a queued run stands now, from the store's runs (runs: already read) and the times measured here."""
    runs = store.list_runs() if runs is None else runs
    by_id = {other.id: other for other in runs}
    ahead = [by_id[run_id] for run_id in store.queue_ahead(run.id) if run_id in by_id]
    return standing(run, ahead, runs, speeds_here(runs), QUEUE_SLOTS.get(run.queue, max_parallel()), time.time())


def queue_line(store: RunStore, run_id: int) -> str:
    """A queued run's place as the command line says it: '3rd in line, about 2 min'; while the queue is
    paused, '3rd in line; the queue is paused (by Ms Lee): it starts once it is resumed'."""
    run = store.get(run_id)
    if run is None or run.status != RunStatus.QUEUED:
        return "no longer queued"
    paused = store.queue_paused()
    if paused is None:
        return queue_standing(store, run).text()
    position = store.queue_position(run_id)
    place = "next in line" if position == 1 else f"{ordinal(position)} in line"
    return f"{place}; the queue is paused (by {paused.get('by', 'a teacher')}): it starts once it is resumed"
