"""`python -m relyscope.service serve|worker ...`: the service commands without the main CLI."""

from __future__ import annotations

import argparse
import sys

from relyscope.service.commands import add_commands
from relyscope.service.worker_commands import add_commands as add_worker_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relyscope.service")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    add_worker_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
