"""python -m fmnist: the command line, in fmnist/cli/ (the installed `fmnist` script calls this main too)."""

import sys

from fmnist.cli import main

if __name__ == "__main__":
    sys.exit(main())
