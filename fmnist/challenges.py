"""Class challenges: a teacher (or a learner alone, for themselves) sets a goal under constraints,
people submit finished trainings of their own, and a board ranks them on test images nobody sees
scores for until the deadline.

The ranking cannot be gamed by picking on it. The 10,000 test images are split, per challenge, by a
seeded permutation kept with it (split_seed): the first PUBLIC_FRACTION (30 %, 3,000 images) of
numpy's default_rng(split_seed).permutation(10000) is the public part, the other 70 % (7,000) the
private part, as Kaggle's in-class competitions split theirs. A submission is scored on both parts
as it is submitted, from the run's stored test-set probabilities (RunStore.probs_path). Before the
deadline the board shows the public scores only: ChallengeStore never reads a private score out of
the database before the deadline, so nothing above it (services, pages) can show one. At the
deadline (or when its opener or a teacher closes it early) the private scores rank the final board.

Each person's entry is their best submission by public score (ties: the earlier one), chosen
before the deadline; the final board ranks these entries by their private score. Someone who
submits many runs cannot pick the one that scores best on the private part: they never see it.

Pure Python with the run store's database (SQLAlchemy), like fmnist.people; no Streamlit here.
"""

import secrets
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cache

import numpy as np
import sqlalchemy as sa

from fmnist.database import Database
from fmnist.dataset import FASHION_MNIST
from fmnist.evaluation import read_probabilities
from fmnist.models import FILTERS_RANGE, MAX_CONV_BLOCKS, ConvBlock, ModelSpec, count_params, validate
from fmnist.names import visible_text
from fmnist.runs import Run, RunKind, RunStatus
from fmnist.schema import challenge_submissions, challenges
from fmnist.stack_link import ALL_IMAGES, TRAIN_SIZES

PUBLIC_FRACTION = 0.3
MAX_TITLE = 80
MAX_SUBMISSIONS = 100


class ChallengeError(ValueError):
    """A challenge or a submission refused: the message says why; nothing was written."""


@cache
def fewest_params() -> int:
    """The smallest stack the app builds: three conv blocks of the fewest filters, pooled, no dense layer."""
    return count_params(validate(ModelSpec(layers=(), conv=(ConvBlock(FILTERS_RANGE[0]),) * MAX_CONV_BLOCKS)))


FEWEST_IMAGES = TRAIN_SIZES[0]  # the fewest training images Build & Train offers

# Each constraint: what it is called in a refusal, and the least that leaves any run possible.
CONSTRAINTS = {
    "max_params": ("parameters", fewest_params),
    "max_epochs": ("epochs", lambda: 1),
    "max_images": ("training images", lambda: FEWEST_IMAGES),
    "max_minutes": ("minutes of training", lambda: 1),
}


@dataclass(frozen=True)
class Constraints:
    """The most a submitted run may use (None: no limit): parameters, epochs it trained, training
    images, minutes of training."""
    max_params: int | None = None
    max_epochs: int | None = None
    max_images: int | None = None
    max_minutes: int | None = None

    def checked(self) -> "Constraints":
        """These constraints, or ChallengeError naming one that no run could meet."""
        for key, (word, least) in CONSTRAINTS.items():
            value = getattr(self, key)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ChallengeError(f"The most {word}: a whole number from 1, or none; got {value!r}.")
            if value < least():
                raise ChallengeError(f"At most {value:,} {word} allows no run at all: the app's smallest is {least():,}.")
        return self

    def describe(self) -> str:
        """'at most 100,000 parameters, 5 epochs'; 'no constraints'."""
        parts = [f"{getattr(self, key):,} {CONSTRAINTS[key][0]}" for key in CONSTRAINTS if getattr(self, key) is not None]
        return f"at most {', '.join(parts)}" if parts else "no constraints"

    def broken_by(self, run: Run) -> list[str]:
        """Each constraint the run breaks, named with what it has: 'at most 100,000 parameters; run #7 has 235,146'."""
        has = {
            "max_params": (run.params, f"has {run.params:,}"),
            "max_epochs": (epochs_trained(run), f"trained {epochs_trained(run):,}"),
            "max_images": (images_of(run), f"trained on {images_of(run):,}"),
            "max_minutes": (None if run.train_s is None else run.train_s / 60,
                            "has no training time recorded" if run.train_s is None else f"trained for {run.train_s / 60:.1f}"),
        }
        broken = []
        for key, (word, _) in CONSTRAINTS.items():
            limit = getattr(self, key)
            value, said = has[key]
            if limit is not None and (value is None or value > limit):
                broken.append(f"at most {limit:,} {word}; run #{run.id} {said}")
        return broken


def epochs_trained(run: Run) -> int:
    """The epochs a run trained: the one it reached, or (none recorded) the epochs it asked for."""
    return run.epoch or run.spec.epochs


def images_of(run: Run) -> int:
    return run.train_limit or ALL_IMAGES


@dataclass(frozen=True)
class Challenge:
    id: int
    title: str
    constraints: Constraints
    deadline: float  # UTC, seconds since the epoch
    submissions_per_person: int
    opened_by: str  # fmnist.access.Person.id
    opened_by_name: str
    created_at: float
    closed_at: float | None
    split_seed: int

    @property
    def ends_at(self) -> float:
        """When submissions end and the private part is revealed: the deadline, or when it was closed before it."""
        return min(self.deadline, self.closed_at) if self.closed_at is not None else self.deadline

    def ended(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.ends_at


def deadline_text(moment: float) -> str:
    """'2026-12-08 14:00 UTC'."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- the split and the scores ---

def split(seed: int, n_images: int = FASHION_MNIST.test_size) -> tuple[np.ndarray, np.ndarray]:
    """(public, private) indices of the test images, sorted: a permutation by numpy's default_rng(seed),
    its first PUBLIC_FRACTION public. The same seed gives the same parts, on every machine."""
    order = np.random.default_rng(seed).permutation(n_images)
    cut = round(n_images * PUBLIC_FRACTION)
    return np.sort(order[:cut]), np.sort(order[cut:])


def part_scores(probs: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, float]:
    """(public, private) accuracy of test-set probabilities against the test labels."""
    right = np.argmax(probs, axis=1) == labels
    public, private = split(seed, len(labels))
    return float(right[public].mean()), float(right[private].mean())


# --- what the store gives back ---

@dataclass(frozen=True)
class Submission:
    id: int
    challenge_id: int
    run_id: int
    run_name: str
    params: int
    person_id: str
    person_name: str
    submitted_at: float
    public_acc: float
    private_acc: float | None  # None until the challenge ends


@dataclass(frozen=True)
class Entry:
    """A person's place on a board: their best submission by public score, with how many they made."""
    rank: int
    submission: Submission
    submissions: int


@dataclass(frozen=True)
class Board:
    challenge: Challenge
    final: bool  # ranked by the private part (the challenge ended); else by the public part
    entries: list[Entry]


def best_by_public(submissions: list[Submission]) -> list[tuple[Submission, int]]:
    """Each person's best submission by public score (ties: the earlier), with their number of submissions."""
    best: dict[str, Submission] = {}
    counts: dict[str, int] = {}
    for sub in sorted(submissions, key=lambda s: (s.submitted_at, s.id)):
        counts[sub.person_id] = counts.get(sub.person_id, 0) + 1
        if sub.person_id not in best or sub.public_acc > best[sub.person_id].public_acc:
            best[sub.person_id] = sub
    return [(sub, counts[person]) for person, sub in best.items()]


def ranked(challenge: Challenge, submissions: list[Submission], now: float | None = None) -> Board:
    """The board: each person's best by public score, ranked by the private part once the challenge
    ended, by the public part before (ties: the earlier submission)."""
    final = challenge.ended(now) and all(sub.private_acc is not None for sub in submissions)
    score = (lambda sub: sub.private_acc) if final else (lambda sub: sub.public_acc)
    entries = sorted(best_by_public(submissions), key=lambda pair: (-score(pair[0]), pair[0].submitted_at, pair[0].id))
    return Board(challenge, final, [Entry(rank, sub, count) for rank, (sub, count) in enumerate(entries, start=1)])


def challenge_of(row) -> Challenge:
    data = dict(row._mapping)
    constraints = Constraints(**{field.name: data.pop(field.name) for field in fields(Constraints)})
    return Challenge(constraints=constraints, **data)


class ChallengeStore:
    """The challenges in the run store's database (whose tables the run store opening it brought up to
    date); a RunStore reaches it as `store.challenges`. Rights are the services' (fmnist.services)."""

    def __init__(self, database: Database):
        self.database = database

    def open(self, title: str, constraints: Constraints, deadline: float, submissions_per_person: int,
             opened_by: str, opened_by_name: str, now: float | None = None) -> int:
        """A new challenge's id; ChallengeError for a title that cannot be shown, a deadline not in the
        future, constraints no run could meet, or no submission allowed."""
        now = time.time() if now is None else now
        try:
            title = visible_text(title, "A challenge's title", MAX_TITLE)
        except ValueError as e:
            raise ChallengeError(str(e)) from None
        constraints.checked()
        if not isinstance(deadline, (int, float)) or isinstance(deadline, bool) or not np.isfinite(deadline):
            raise ChallengeError(f"The deadline: a moment in time, got {deadline!r}.")
        if deadline <= now:
            raise ChallengeError(f"The deadline must be in the future: {deadline_text(deadline)} has passed "
                                 f"(it is {deadline_text(now)} now).")
        if not isinstance(submissions_per_person, int) or isinstance(submissions_per_person, bool) or \
                not 1 <= submissions_per_person <= MAX_SUBMISSIONS:
            raise ChallengeError(f"Submissions per person: a whole number from 1 to {MAX_SUBMISSIONS}; got {submissions_per_person!r}.")
        with self.database.transaction() as db:
            return db.execute(challenges.insert().values(
                title=title, deadline=float(deadline), submissions_per_person=submissions_per_person, opened_by=opened_by,
                opened_by_name=opened_by_name, created_at=now, split_seed=secrets.randbits(62),
                **{field.name: getattr(constraints, field.name) for field in fields(Constraints)},
            ).returning(challenges.c.id)).scalar_one()

    def get(self, challenge_id: int) -> Challenge | None:
        with self.database.transaction(write=False) as db:
            row = db.execute(sa.select(challenges).where(challenges.c.id == challenge_id)).first()
        return challenge_of(row) if row else None

    def all(self) -> list[Challenge]:
        """Every challenge, newest first."""
        with self.database.transaction(write=False) as db:
            rows = db.execute(sa.select(challenges).order_by(challenges.c.id.desc())).fetchall()
        return [challenge_of(row) for row in rows]

    def submissions(self, challenge_id: int, now: float | None = None, person_id: str | None = None) -> list[Submission]:
        """The submissions to a challenge (one person's, with person_id), oldest first. Their private
        scores are read only once the challenge has ended: before, private_acc is None."""
        with self.database.transaction(write=False) as db:
            row = db.execute(sa.select(challenges).where(challenges.c.id == challenge_id)).first()
            if row is None:
                return []
            revealed = challenge_of(row).ended(now)
            private = challenge_submissions.c.private_acc if revealed else sa.null().label("private_acc")
            columns = [column for column in challenge_submissions.c if column.name != "private_acc"]
            query = sa.select(*columns, private).where(challenge_submissions.c.challenge_id == challenge_id)
            if person_id is not None:
                query = query.where(challenge_submissions.c.person_id == person_id)
            rows = db.execute(query.order_by(challenge_submissions.c.id)).fetchall()
        return [Submission(**dict(row._mapping)) for row in rows]

    def board(self, challenge_id: int, now: float | None = None) -> Board | None:
        """The challenge's board as it stands at now (None: no such challenge): public before the end, final after."""
        challenge = self.get(challenge_id)
        if challenge is None:
            return None
        return ranked(challenge, self.submissions(challenge_id, now), now)

    def submit(self, challenge_id: int, run: Run, person_id: str, person_name: str, probs_path, labels: np.ndarray,
               now: float | None = None) -> Submission:
        """Submit a run (the caller checked it is the person's): scored on both parts and kept, or
        ChallengeError saying why not, nothing written: a challenge that ended, a run that is not a
        finished training or has no test probabilities, a constraint broken, a run submitted before,
        or as many submissions as the challenge allows."""
        now = time.time() if now is None else now
        challenge = self.get(challenge_id)
        if challenge is None:
            raise ChallengeError(f"There is no challenge {challenge_id}: it was deleted, or never existed.")
        if challenge.ended(now):
            raise ChallengeError(f"“{challenge.title}” ended at {deadline_text(challenge.ends_at)}: it takes no more submissions.")
        if run.kind != RunKind.TRAIN:
            raise ChallengeError(f"Run #{run.id} is a {run.kind} run: only a training can be submitted.")
        if run.status not in (RunStatus.FINISHED, RunStatus.STOPPED):
            raise ChallengeError(f"Run #{run.id} is {run.status}: only a finished training (or one stopped with what it "
                                 "learnt) can be submitted.")
        broken = challenge.constraints.broken_by(run)
        if broken:
            raise ChallengeError(f"Run #{run.id} breaks the challenge's constraints: {'; and '.join(broken)}.")
        probs = read_probabilities(probs_path, len(labels))
        if probs is None:
            raise ChallengeError(f"Run #{run.id} has no predictions for the test images to score: open it on Evaluate "
                                 "once (it computes them), then submit it.")
        public_acc, private_acc = part_scores(probs, labels, challenge.split_seed)
        with self.database.transaction() as db:
            mine = db.execute(sa.select(challenge_submissions.c.run_id).where(
                challenge_submissions.c.challenge_id == challenge_id, challenge_submissions.c.person_id == person_id)).scalars().all()
            if run.id in mine:
                raise ChallengeError(f"Run #{run.id} was submitted to “{challenge.title}” already.")
            if len(mine) >= challenge.submissions_per_person:
                raise ChallengeError(f"You have made {len(mine)} submissions to “{challenge.title}”, the most it allows "
                                     f"({challenge.submissions_per_person}).")
            values = dict(challenge_id=challenge_id, run_id=run.id, run_name=run.name, params=run.params, person_id=person_id,
                          person_name=person_name, submitted_at=now, public_acc=public_acc, private_acc=private_acc)
            submission_id = db.execute(challenge_submissions.insert().values(**values).returning(challenge_submissions.c.id)).scalar_one()
        return Submission(id=submission_id, **values | {"private_acc": None})

    def close(self, challenge_id: int, now: float | None = None) -> None:
        """End a challenge now, before its deadline: no more submissions, and the final board is revealed."""
        now = time.time() if now is None else now
        with self.database.transaction() as db:
            db.execute(challenges.update().where(challenges.c.id == challenge_id, challenges.c.closed_at.is_(None))
                       .values(closed_at=now))

    def delete(self, challenge_id: int) -> None:
        """A challenge and its submissions (the runs stay)."""
        with self.database.transaction() as db:
            db.execute(challenge_submissions.delete().where(challenge_submissions.c.challenge_id == challenge_id))
            db.execute(challenges.delete().where(challenges.c.id == challenge_id))
