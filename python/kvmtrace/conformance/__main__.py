"""``python -m kvmtrace.conformance``: the suite without the kvmtrace CLI (same options)."""

from __future__ import annotations

import argparse
import sys

from kvmtrace.conformance.report import compare_reports, main


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kvmtrace.conformance",
                                description="KVM guest-debug conformance against the x86 architecture")
    p.add_argument("--scenario", action="append", default=[], help="run only this scenario (repeatable)")
    p.add_argument("--mode", action="append", default=[], help="real, protected or long (repeatable)")
    p.add_argument("--json", metavar="FILE", help="write the JSON report")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown report")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per scenario x mode)")
    p.add_argument("--verbose", "-v", action="store_true", help="every run's aspects and first difference")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="print what changed between two JSON reports")
    a = p.parse_args(argv)
    if a.compare:
        return compare_reports(*a.compare)
    return main(a.scenario, a.mode, a.json, markdown_path=a.markdown, verbose=a.verbose, junit_path=a.junit)


if __name__ == "__main__":
    sys.exit(cli())
