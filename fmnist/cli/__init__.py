"""Command line: python -m fmnist {train,runs,queue,stop,code,advise,cv,seeds,seed-table,search,serve,hash-code,forget-person,
bench,project,inside-bench,photo-bench,export,predict} --help

The command line acts as this machine's admin: whoever has a shell here owns the run store.
Each module here holds a group of commands, each command as its parser (`add_...`) and its body
(`cmd_...`); a command imports the Keras side only inside its body, so `--help`, `runs` and `stop` stay light.
"""

import argparse
import os
import sys

# TensorFlow's start-up chatter drowns the progress bar; errors still show. Here, before any command
# can import TensorFlow, so `python -m fmnist`, the installed `fmnist` script and tests calling main() all get it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fmnist import cluster  # noqa: E402
from fmnist.cli.bench_commands import add_bench, add_inside_bench, add_photo_bench  # noqa: E402
from fmnist.cli.export_commands import add_export, add_predict  # noqa: E402
from fmnist.cli.queue_commands import add_queue  # noqa: E402
from fmnist.cli.run_commands import add_advise, add_code, add_cv, add_project, add_runs, add_seeds, add_stop  # noqa: E402
from fmnist.cli.search_commands import add_search  # noqa: E402
from fmnist.cli.sharing_commands import add_forget_person, add_hash_code, add_serve  # noqa: E402
from fmnist.cli.train_commands import add_seed_table, add_train  # noqa: E402
from fmnist.data import DatasetError  # noqa: E402
from fmnist.home import StoreError  # noqa: E402

# In the order `python -m fmnist --help` lists them.
COMMANDS = (add_train, add_runs, add_queue, add_stop, add_code, add_advise, add_cv, add_seeds, add_seed_table, add_search, add_serve, add_hash_code,
            add_forget_person, add_bench, add_project, add_inside_bench, add_photo_bench, add_export, add_predict)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmnist", description="Fashion-MNIST Studio from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (DatasetError, StoreError, cluster.ClusterError, ValueError, PermissionError) as e:  # SpecError and SharingConfigError are ValueErrors
        print(f"error: {e}", file=sys.stderr)
        return 2
