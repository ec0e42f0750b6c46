"""``scnet-report``: not implemented yet (see issue: sweeps and reports)."""

import sys


def main() -> None:
    print("scnet-report: not implemented yet", file=sys.stderr)
    sys.exit(2)
