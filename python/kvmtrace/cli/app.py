"""The typer app, its commands, and the one mapping from failures to exit codes.

Exit codes: 0 success, 1 a run failed (guest fault, KVM error, sink error, failed
analysis rules), 2 a usage error (bad arguments, missing or unreadable files),
130 interrupted.

A command is a module in :mod:`kvmtrace.cli.commands` with ``NAME`` and a
``command`` function (its typer options and docstring are the command's help),
named once in :data:`COMMANDS`.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
import typer.core

from kvmtrace.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageProblem,
    print_error,
    widen_when_piped,
)
from kvmtrace.exceptions import InvalidConfigError, KvmTraceError, TraceFileError

COMMANDS = ("demo", "trace", "boot", "show", "analyze", "export", "conformance", "diff", "fuzz", "bench")
"""The modules of :mod:`kvmtrace.cli.commands`, in the order ``kvmtrace --help`` lists
them: a new command is a module there and its name here."""

app = typer.Typer(
    help="kvmtrace: vCPU debug tracing on Linux KVM (single-step, breakpoints, DR6 conformance).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    """kvmtrace: vCPU debug tracing on Linux KVM."""
    widen_when_piped()


for _name in COMMANDS:
    _module = importlib.import_module(f"kvmtrace.cli.commands.{_name}")
    app.command(_module.NAME)(_module.command)


def _click_module() -> Any:
    # typer >= 0.2x vendors click as typer._click; older typer uses click itself.
    mod = getattr(typer.core, "_click", None)
    if mod is None:
        import click as mod
    return mod


_click = _click_module()
_NO_ARGS: Any = getattr(_click.exceptions, "NoArgsIsHelpError", ())
_ABORT: Any = getattr(_click.exceptions, "Abort", ())


def run(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: sys.argv[1:]) and return the exit code."""
    try:
        rv = app(args=argv, prog_name="kvmtrace", standalone_mode=False)
    except _NO_ARGS as e:
        typer.echo(e.format_message())
        return EXIT_OK
    except _click.exceptions.UsageError as e:
        cmd = e.ctx.command_path if e.ctx is not None else "kvmtrace"
        print_error(f"{e.format_message()} (see `{cmd} --help`)")
        return EXIT_USAGE
    except _ABORT:
        return EXIT_INTERRUPTED
    except UsageProblem as e:
        print_error(str(e))
        return EXIT_USAGE
    except TraceFileError as e:
        print_error(str(e).replace("\n", " | "))  # one line, even for a file with several problems
        return EXIT_USAGE
    except InvalidConfigError as e:
        print_error(str(e))
        return EXIT_USAGE
    except KvmTraceError as e:
        print_error(str(e))
        return EXIT_FAILED
    except ImportError as e:
        print_error(f"{e}")
        return EXIT_FAILED
    return int(rv or 0)


def main() -> None:
    sys.exit(run())
