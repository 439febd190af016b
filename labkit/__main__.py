import sys

from labkit.cli import entry

sys.exit(entry())
