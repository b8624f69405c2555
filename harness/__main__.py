"""``python -m harness``: the command line."""

from harness.cli import console

raise SystemExit(console())
