"""``python -m simulator``: see ``simulator`` for what it does and ``--help`` for its options."""

import sys

from simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
