"""Class challenges (fmnist.challenges, and their services): constraints and deadlines refused at creation,
submissions refused with what they break, the public/private split of the test images, private scores
hidden until the deadline, the final ranking after it. Finished runs are store rows with test
probabilities written here: no training."""

import numpy as np
import pytest

from fmnist import services
from fmnist.access import AccessError, Actor, Person
from fmnist.challenges import PUBLIC_FRACTION, ChallengeError, Constraints, fewest_params, part_scores, split
from fmnist.models import dense_spec
from fmnist.store import RunStore
from fmnist.worker import try_start

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC
HOUR = 3600.0
LABELS = np.random.default_rng(0).integers(0, 10, 10000)
ADA, BOB = Person("class:ada", "Ada"), Person("class:bob", "Bob")
TEACHER = Person("class:hopper", "Ms Hopper", admin=True)


def probs_right_on(labels: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Probabilities that pick the true class where `right` is set, the next class elsewhere."""
    predicted = np.where(right, labels, (labels + 1) % 10)
    probs = np.full((len(labels), 10), 0.01, dtype=np.float32)
    probs[np.arange(len(labels)), predicted] = 0.91
    return probs


def finished_run(store: RunStore, person: Person | None, right: float | np.ndarray = 0.9, seed: int = 1, widths=(32,),
                 epochs: int = 1, train_limit: int | None = 10000, train_s: float = 60.0, name: str | None = None) -> int:
    """A finished training of person's (None: this machine's own user) with test probabilities, right on
    about `right` of the test images (or exactly where a mask says)."""
    owner = {} if person is None else {"owner": person.id, "owner_name": person.name}
    run_id = store.create_run(dense_spec(list(widths), epochs=epochs), name=name, train_limit=train_limit, **owner)
    try_start(store, run_id, max_parallel=1)
    mask = right if isinstance(right, np.ndarray) else np.random.default_rng(seed).random(len(LABELS)) < right
    np.save(store.probs_path(run_id), probs_right_on(LABELS, mask))
    store.finish(run_id, "finished", test_loss=0.4, test_acc=float(mask.mean()), train_s=train_s)
    return run_id


def opened(store: RunStore, actor: Actor | None = None, constraints: Constraints | None = None, per_person: int = 3) -> int:
    return services.open_challenge(store, actor or Actor(TEACHER), "Smallest good stack", constraints or Constraints(), NOW + HOUR,
                                   per_person, now=NOW)


def submit(store, person, challenge_id, run_id, now=NOW + 60):
    actor = Actor.local() if person is None else Actor(person)
    return services.submit_to_challenge(store, actor, challenge_id, run_id, LABELS, now=now)


# --- the split and the scores ---

def test_the_split_is_disjoint_complete_and_stable_per_seed():
    public, private = split(1234)
    assert (len(public), len(private)) == (3000, 7000) == (round(10000 * PUBLIC_FRACTION), 10000 - round(10000 * PUBLIC_FRACTION))
    assert not set(public) & set(private)
    assert sorted([*public, *private]) == list(range(10000))
    again = split(1234)
    assert np.array_equal(public, again[0]) and np.array_equal(private, again[1]), "the same seed, the same parts"
    assert not np.array_equal(public, split(1235)[0]), "another challenge, another split"


def test_a_runs_probabilities_are_scored_on_each_part():
    public, _ = split(7)
    only_public = np.zeros(10000, dtype=bool)
    only_public[public] = True
    assert part_scores(probs_right_on(LABELS, only_public), LABELS, 7) == (1.0, 0.0)
    mask = np.random.default_rng(3).random(10000) < 0.8
    public, private = split(7)
    assert part_scores(probs_right_on(LABELS, mask), LABELS, 7) == pytest.approx((mask[public].mean(), mask[private].mean()))


# --- opening a challenge ---

@pytest.mark.parametrize(("constraints", "deadline", "per_person", "message"), [
    (Constraints(), NOW - 1, 3, "The deadline must be in the future: 2027-01-15 07:59 UTC has passed"),
    (Constraints(), NOW, 3, "The deadline must be in the future"),
    (Constraints(max_params=0), NOW + HOUR, 3, "The most parameters: a whole number from 1"),
    (Constraints(max_epochs=-2), NOW + HOUR, 3, "The most epochs: a whole number from 1"),
    (Constraints(max_minutes=2.5), NOW + HOUR, 3, "The most minutes of training: a whole number from 1"),
    (Constraints(max_params=500), NOW + HOUR, 3, "At most 500 parameters allows no run at all: the app's smallest is 706"),
    (Constraints(max_images=100), NOW + HOUR, 3, "At most 100 training images allows no run at all: the app's smallest is 1,000"),
    (Constraints(), NOW + HOUR, 0, "Submissions per person: a whole number from 1"),
])
def test_a_past_deadline_or_impossible_constraints_are_refused_at_creation(home, constraints, deadline, per_person, message):
    store = RunStore()
    with pytest.raises(ChallengeError, match=message):
        services.open_challenge(store, Actor(TEACHER), "A challenge", constraints, deadline, per_person, now=NOW)
    assert store.challenges.all() == []
    assert fewest_params() == 706


def test_who_may_open_close_and_delete_a_challenge(home):
    store = RunStore()
    with pytest.raises(AccessError, match="Only a teacher may open a challenge"):
        opened(store, Actor(ADA))
    with pytest.raises(ChallengeError, match="title: 1 to 80 characters"):
        services.open_challenge(store, Actor(TEACHER), "   ", Constraints(), NOW + HOUR, 1, now=NOW)
    mine = opened(store, Actor.local())  # alone on one's own machine: a learner sets themselves one
    assert store.challenges.get(mine).opened_by == "local"
    theirs = opened(store)
    with pytest.raises(AccessError, match="Only who opened “Smallest good stack” or a teacher may close it"):
        services.close_challenge(store, Actor(ADA), theirs, now=NOW + 1)
    with pytest.raises(AccessError, match="may delete it"):
        services.delete_challenge(store, Actor(ADA), theirs)
    services.close_challenge(store, Actor(TEACHER), theirs, now=NOW + 1)
    assert store.challenges.get(theirs).ended(NOW + 2) and not store.challenges.get(mine).ended(NOW + 2)
    services.delete_challenge(store, Actor(TEACHER), theirs)
    assert [challenge.id for challenge in store.challenges.all()] == [mine]


# --- submissions ---

def test_a_run_breaking_a_constraint_is_refused_with_the_constraint_named(home):
    store = RunStore()
    challenge = opened(store, constraints=Constraints(max_params=100_000, max_epochs=5, max_images=20000, max_minutes=2))
    big = finished_run(store, ADA, widths=(256, 128))
    with pytest.raises(ChallengeError, match=rf"Run #{big} breaks the challenge's constraints: at most 100,000 parameters; "
                                             rf"run #{big} has 235,146\.$"):
        submit(store, ADA, challenge, big)
    several = finished_run(store, ADA, epochs=8, train_limit=None, train_s=150.0)
    with pytest.raises(ChallengeError) as refused:
        submit(store, ADA, challenge, several)
    assert str(refused.value) == (f"Run #{several} breaks the challenge's constraints: at most 5 epochs; run #{several} trained 8; "
                                  f"and at most 20,000 training images; run #{several} trained on 60,000; and at most 2 minutes "
                                  f"of training; run #{several} trained for 2.5.")
    assert store.challenges.submissions(challenge) == [], "nothing written"
    fits = finished_run(store, ADA)
    assert submit(store, ADA, challenge, fits).run_id == fits


def test_late_extra_foreign_unfinished_and_repeated_submissions_are_refused(home):
    store = RunStore()
    challenge = opened(store, per_person=2)
    first, second, third = (finished_run(store, ADA, seed=seed) for seed in (1, 2, 3))
    bobs = finished_run(store, BOB)
    queued = store.create_run(dense_spec([16]), owner=ADA.id, owner_name=ADA.name)
    with pytest.raises(ChallengeError, match=r"ended at 2027-01-15 09:00 UTC: it takes no more submissions"):
        submit(store, ADA, challenge, first, now=NOW + HOUR)
    with pytest.raises(AccessError, match=f"Run #{bobs} is not yours"):
        submit(store, ADA, challenge, bobs)
    with pytest.raises(ChallengeError, match=f"Run #{queued} is queued: only a finished training"):
        submit(store, ADA, challenge, queued)
    with pytest.raises(AccessError, match="There is no run 999"):
        submit(store, ADA, challenge, 999)
    submit(store, ADA, challenge, first)
    with pytest.raises(ChallengeError, match=f"Run #{first} was submitted to “Smallest good stack” already"):
        submit(store, ADA, challenge, first)
    submit(store, ADA, challenge, second)
    with pytest.raises(ChallengeError, match=r"You have made 2 submissions to “Smallest good stack”, the most it allows \(2\)"):
        submit(store, ADA, challenge, third)
    assert [sub.run_id for sub in store.challenges.submissions(challenge)] == [first, second]
    no_probs = finished_run(store, BOB)
    store.probs_path(no_probs).unlink()
    with pytest.raises(ChallengeError, match="has no predictions for the test images"):
        submit(store, BOB, challenge, no_probs)


# --- the board ---

def test_private_scores_stay_hidden_until_the_deadline_then_rank_the_final_board(home, database):
    store = RunStore()
    challenge = opened(store)
    public, private = split(store.challenges.get(challenge).split_seed)
    on_public = np.zeros(10000, dtype=bool)
    on_public[public] = True
    # Ada's runs: one right on the public part only (she would pick it by its public score), one honest
    ada_public = finished_run(store, ADA, right=on_public, name="fits the public part")
    ada_honest = finished_run(store, ADA, right=0.85, seed=5)
    bob = finished_run(store, BOB, right=0.88, seed=6)
    for person, run_id in ((ADA, ada_public), (ADA, ada_honest), (BOB, bob)):
        assert submit(store, person, challenge, run_id).private_acc is None, "a submitter sees no private score"

    before = store.challenges.board(challenge, now=NOW + HOUR - 1)
    assert not before.final
    assert all(sub.private_acc is None for sub in store.challenges.submissions(challenge, now=NOW + HOUR - 1))
    assert all(entry.submission.private_acc is None for entry in before.entries)
    assert [(e.rank, e.submission.person_name, e.submission.run_id, e.submissions) for e in before.entries] == \
        [(1, "Ada", ada_public, 2), (2, "Bob", bob, 1)], "each person's best by public score, ranked by it"
    assert before.entries[0].submission.public_acc == 1.0

    after = store.challenges.board(challenge, now=NOW + HOUR)
    assert after.final
    assert [(e.rank, e.submission.person_name, e.submission.run_id) for e in after.entries] == \
        [(1, "Bob", bob), (2, "Ada", ada_public)], "the private part ranks: fitting the public part did not pay"
    assert after.entries[1].submission.private_acc == 0.0
    assert after.entries[0].submission.private_acc == pytest.approx(
        (np.random.default_rng(6).random(10000) < 0.88)[private].mean())


def test_closing_early_reveals_the_final_board(home):
    store = RunStore()
    challenge = opened(store, Actor.local())
    run_id = finished_run(store, None)
    submit(store, None, challenge, run_id)
    assert store.challenges.board(challenge, now=NOW + 120).entries[0].submission.private_acc is None
    services.close_challenge(store, Actor.local(), challenge, now=NOW + 120)
    board = store.challenges.board(challenge, now=NOW + 121)
    assert board.final and board.entries[0].submission.private_acc is not None
    with pytest.raises(ChallengeError, match="has ended already"):
        services.close_challenge(store, Actor.local(), challenge, now=NOW + 122)
