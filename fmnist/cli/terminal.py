"""The tables commands print once they end (progress bars and queue lines: fmnist.console)."""

import time


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table: four decimals for scores, '-' where there is no value."""
    import pandas as pd  # only the commands that print a table pay its half-second import

    table = pd.DataFrame(rows, columns=columns).astype(object)
    return table.to_string(index=False, na_rep="-", justify="left",
                           formatters={c: lambda v: "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)) for c in columns})


def queue_printer(store, run_id: int, every_s: float = 5.0):
    """What the command line passes as on_wait while its run waits (fmnist.worker.wait_for_slot): the
    line with its place and about when it starts (fmnist.services.queue_line), said again when it
    changes, looked at every `every_s` seconds (it reads every run to estimate)."""
    from fmnist import services
    from fmnist.console import print_queue_line

    said = {"line": None, "at": -every_s}

    def on_wait(_position: int) -> None:
        now = time.monotonic()
        if now - said["at"] < every_s:
            return
        said["at"] = now
        line = services.queue_line(store, run_id)
        if line != said["line"]:
            said["line"] = line
            print_queue_line(line)

    return on_wait
