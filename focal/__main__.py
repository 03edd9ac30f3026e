"""``python -m focal``: the commands live in :mod:`focal.commands`."""

import sys

from focal.commands.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
