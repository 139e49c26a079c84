"""The tables commands print once they end (progress bars and queue lines: fmnist.console)."""

import pandas as pd


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table: four decimals for scores, '-' where there is no value."""
    table = pd.DataFrame(rows, columns=columns).astype(object)
    return table.to_string(index=False, na_rep="-", justify="left",
                           formatters={c: lambda v: "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)) for c in columns})
