"""``python -m kvmtrace.cli``."""

from kvmtrace.cli.app import main

main()
