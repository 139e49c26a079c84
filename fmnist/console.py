"""What a training process and the command line print while a run waits, trains or ends: a progress
bar per epoch, the queue line, a search's trial lines. On stderr, except the trial lines: stdout
keeps each command's final JSON line."""

import sys

from tqdm import tqdm

from fmnist.models import stack_name
from fmnist.queue_eta import ordinal


class ProgressBar:
    """The training's progress on stderr (stdout keeps the final JSON line): a bar per epoch with the live samples/s;
    for a run that works in stages (a projection, an export), one bar in percent named by its stage."""

    def __init__(self):
        self.epoch, self.bar = None, None

    def stage(self, stage: str, fraction: float) -> None:
        if self.bar is None:
            self.bar = tqdm(total=100, unit="%", bar_format="{desc} {bar} {n:.0f}%", leave=True, dynamic_ncols=True)
        self.bar.set_description_str(stage, refresh=False)
        self.bar.update(round(100 * fraction) - self.bar.n)

    def __call__(self, epoch, epochs, step, steps, samples_per_s):
        if epoch != self.epoch:
            self.close()
            self.epoch = epoch
            self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit=" batches", leave=True, dynamic_ncols=True)
        self.bar.set_postfix_str(f"{samples_per_s:,.0f} samples/s", refresh=False)
        self.bar.update(step - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def print_queued(position: int) -> None:
    """A training process's queue line in its log: 'queued: 3rd in line'."""
    print_queue_line("next in line" if position == 1 else f"{ordinal(position)} in line")


def print_queue_line(line: str) -> None:
    """The queue line, rewritten in place while the run waits: 'queued: 3rd in line, about 2 min'."""
    sys.stderr.write(f"\r\033[Kqueued: {line} " if sys.stderr.isatty() else f"queued: {line}\n")
    sys.stderr.flush()


def print_trial(run, value) -> None:
    """A search's trial as it ends: one line."""
    score = f"best validation accuracy {value:.4f}" if value is not None else (run.error or "no score")
    print(f"trial #{run.id} {stack_name(run.spec)}, batch {run.spec.batch_size}, lr {run.spec.learning_rate:.2g}: "
          f"{run.status} after {run.epoch}/{run.spec.epochs} epochs, {score}", flush=True)
