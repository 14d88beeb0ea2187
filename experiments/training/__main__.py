"""``python -m experiments.training <experiment>``: the ``train@<experiment>`` stage."""

import sys

from experiments.training.stage import main

if __name__ == "__main__":
    sys.exit(main())
