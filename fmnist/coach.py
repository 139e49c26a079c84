"""A coach that reads a run's curves: plain-language findings, each with its evidence and one next step.

Pure side. It reads what the store keeps of a run (its spec, its epochs' train and validation loss
and accuracy, its test score) and, for the "larger than it needs" finding, the other finished runs.
Each finding carries `change`: the settings to change in Build & Train to try the next step (a
dict of fmnist.models.ModelSpec fields, with `layers` as a list of DenseLayer dicts).

The thresholds are named here and stated in docs/guide.md, "The coach"; they hold for the
validation curve only (the test set is scored once, at the end, and chooses nothing).
"""

import math
from dataclasses import asdict, dataclass, field

from fmnist.models import ModelSpec
from fmnist.runs import Run, RunKind, RunStatus

# Overfitting: validation loss above its lowest for at least this many epochs in a row at the end,
# while the training loss went on falling.
OVERFIT_EPOCHS = 3
# Underfitting: training accuracy at the end below this, and it gained less than PLATEAU_GAIN over
# the last PLATEAU_EPOCHS epochs (the model cannot fit the training images better).
UNDERFIT_ACCURACY = 0.85
PLATEAU_EPOCHS = 3
PLATEAU_GAIN = 0.005
# A learning rate too high: a loss that is not a number, a training loss that ends above where it
# began, or an epoch whose training loss jumps above SPIKE × the lowest before it.
SPIKE = 1.5
# Too few epochs: validation accuracy best at the last epoch, having gained at least STILL_GAIN over
# each of the last two epochs.
STILL_GAIN = 0.002
# Larger than it needs: a finished run with at most SMALLER_BY of its parameters scores within
# SAME_ACCURACY of its test accuracy.
SMALLER_BY = 0.5
SAME_ACCURACY = 0.002


@dataclass(frozen=True)
class Finding:
    kind: str  # overfitting, underfitting, learning_rate, too_few_epochs, too_large
    title: str
    evidence: str
    next_step: str
    change: dict = field(default_factory=dict)  # spec fields to try it with

    def to_dict(self) -> dict:
        return asdict(self)


def changed_spec(spec: ModelSpec, change: dict) -> ModelSpec:
    """The spec with a finding's change applied (validated): what *Try it* fills Build & Train with."""
    return ModelSpec.from_dict({**spec.to_dict(), **change})


class CoachError(ValueError):
    """A run the coach cannot read (none, or a search); the message says why."""


def finite(values) -> bool:
    return all(value is not None and math.isfinite(value) for value in values)


def with_dropout(spec: ModelSpec, dropout: float) -> dict:
    return {"layers": [{**asdict(layer), "dropout": dropout} for layer in spec.layers]}


def overfitting(spec: ModelSpec, epochs: list[dict]) -> Finding | None:
    losses = [e["val_loss"] for e in epochs]
    if len(epochs) <= OVERFIT_EPOCHS or not finite(losses):
        return None
    best = min(range(len(losses)), key=losses.__getitem__)
    rising = len(losses) - 1 - best
    train = [e["loss"] for e in epochs[best:]]
    if rising < OVERFIT_EPOCHS or not finite(train) or train[-1] >= train[0]:
        return None
    kept = epochs[best]
    dropout = max((layer.dropout for layer in spec.layers), default=0.0)
    new_dropout = round(min(dropout + 0.2, 0.5), 2)
    return Finding(
        "overfitting", "It learnt the training images by heart",
        f"validation loss was lowest at epoch {kept['epoch']} ({kept['val_loss']:.3f}) and rose for the {rising} epochs after it, "
        f"while the training loss kept falling ({train[0]:.3f} → {train[-1]:.3f})",
        f"early stopping would have kept epoch {kept['epoch']}, validation accuracy {kept['val_accuracy']:.3f}; "
        f"try dropout {new_dropout:g} with early stopping on",
        {**with_dropout(spec, new_dropout), "early_stopping": True},
    )


def underfitting(spec: ModelSpec, epochs: list[dict]) -> Finding | None:
    accuracy = [e["accuracy"] for e in epochs]
    if len(epochs) < PLATEAU_EPOCHS + 1 or not finite(accuracy):
        return None
    gain = accuracy[-1] - accuracy[-1 - PLATEAU_EPOCHS]
    if accuracy[-1] >= UNDERFIT_ACCURACY or gain >= PLATEAU_GAIN:
        return None
    layers = [asdict(layer) for layer in spec.layers]
    layers[0] = {**layers[0], "units": min(layers[0]["units"] * 2, 1024)}
    return Finding(
        "underfitting", "It cannot fit even the training images",
        f"training accuracy ended at {accuracy[-1]:.3f} and gained {100 * gain:.1f} points over the last {PLATEAU_EPOCHS} epochs",
        f"give it more capacity: a wider first layer ({spec.layers[0].units} → {layers[0]['units']} units) or another layer",
        {"layers": layers},
    )


def learning_rate_too_high(spec: ModelSpec, epochs: list[dict]) -> Finding | None:
    losses = [e["loss"] for e in epochs]
    lower = {"learning_rate": round(spec.learning_rate / 3, 6)}
    step = f"lower the learning rate ({spec.learning_rate:g} → {lower['learning_rate']:g})"
    if not finite(losses + [e["val_loss"] for e in epochs]):
        bad = next(e["epoch"] for e in epochs if not finite([e["loss"], e["val_loss"]]))
        return Finding("learning_rate", "The training diverged", f"the loss is not a number from epoch {bad} on", step, lower)
    if len(losses) >= 2 and losses[-1] > losses[0]:
        return Finding("learning_rate", "The training went the wrong way",
                       f"training loss ended higher than it began ({losses[0]:.3f} → {losses[-1]:.3f})", step, lower)
    for i in range(1, len(losses)):
        if losses[i] > SPIKE * min(losses[:i]):
            return Finding("learning_rate", "The loss jumped",
                           f"training loss at epoch {epochs[i]['epoch']} was {losses[i]:.3f}, over {SPIKE:g}× its lowest before "
                           f"({min(losses[:i]):.3f})", step, lower)
    return None


def too_few_epochs(spec: ModelSpec, epochs: list[dict], stopped: bool) -> Finding | None:
    accuracy = [e["val_accuracy"] for e in epochs]
    if len(epochs) < 3 or not finite(accuracy) or stopped:
        return None
    gains = [accuracy[-1] - accuracy[-2], accuracy[-2] - accuracy[-3]]
    if max(accuracy) != accuracy[-1] or min(gains) < STILL_GAIN:
        return None
    more = min(max(spec.epochs + 5, round(spec.epochs * 1.5)), 500)
    return Finding(
        "too_few_epochs", "It was still improving when it stopped",
        f"validation accuracy rose in each of the last two epochs (+{100 * gains[1]:.1f}, +{100 * gains[0]:.1f} points) "
        f"to its best, {accuracy[-1]:.3f}, at the last epoch",
        f"train for more epochs ({spec.epochs} → {more}), with early stopping on to keep the best",
        {"epochs": more, "early_stopping": True},
    )


def too_large(run: Run, others: list[Run]) -> Finding | None:
    if run.test_acc is None or not run.params:
        return None
    smaller = [other for other in others
               if other.id != run.id and other.kind == RunKind.TRAIN and other.status == RunStatus.FINISHED and other.test_acc is not None
               and other.params <= SMALLER_BY * run.params and other.test_acc >= run.test_acc - SAME_ACCURACY]
    if not smaller:
        return None
    best = min(smaller, key=lambda other: other.params)
    return Finding(
        "too_large", "A much smaller model does as well",
        f"run #{best.id} has {best.params:,} parameters ({best.params / run.params:.0%} of this one's {run.params:,}) "
        f"and scored {best.test_acc:.4f} on the test set against this one's {run.test_acc:.4f}",
        f"start from run #{best.id}'s stack: it trains faster for the same accuracy",
        {"layers": [asdict(layer) for layer in best.spec.layers], "conv": [asdict(block) for block in best.spec.conv]},
    )


def advise(run: Run | None, epochs: list[dict], others: list[Run] = ()) -> list[Finding]:
    """What the curves of a run (during or after training) say, most urgent first; [] when nothing stands out."""
    if run is None:
        raise CoachError("There is no such run.")
    if run.kind == RunKind.SEARCH:
        raise CoachError(f"Run #{run.id} is a search: the coach reads one model's curves (open one of its trials).")
    if not epochs:
        return []
    findings = [learning_rate_too_high(run.spec, epochs)]
    if findings[0] is None:  # a diverging run's other curves say nothing more
        findings = [overfitting(run.spec, epochs), underfitting(run.spec, epochs),
                    too_few_epochs(run.spec, epochs, stopped=run.status == RunStatus.STOPPED or run.active),
                    too_large(run, list(others)) if run.status == RunStatus.FINISHED else None]
    return [finding for finding in findings if finding is not None]


def advice_of(store, run_id: int) -> dict:
    """`python -m fmnist advise RUN_ID`'s JSON: the run, its status and its findings."""
    run = store.get(run_id)
    if run is None:
        raise CoachError(f"There is no run {run_id}.")
    findings = advise(run, store.epochs(run_id), store.list_runs() if run.status == RunStatus.FINISHED else ())
    note = "still training: the findings may change" if run.active else None
    return {"run_id": run_id, "status": str(run.status), "note": note, "findings": [finding.to_dict() for finding in findings]}
