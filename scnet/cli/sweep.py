"""``scnet-sweep``: not implemented yet (see issue: sweeps and reports)."""

import sys


def main() -> None:
    print("scnet-sweep: not implemented yet", file=sys.stderr)
    sys.exit(2)
