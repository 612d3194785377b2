"""Entry point of the `cosim` CLI.

Commands live in `cosim/cli/cmd_*.py`, each exposing `register(app)`; they are discovered here so
that adding a command never edits this file. Bad input exits 2 with one line on stderr; a runtime
failure exits 1 with one line (set COSIM_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import click
import typer

from cosim.errors import CosimInputError


def _click_family(name: str) -> tuple[type, ...]:
    """The click exception class `name`, and Typer's vendored copy of it when Typer ships one (Typer
    >= 0.17 raises `typer._click` exceptions, which are not subclasses of click's)."""
    classes = [getattr(click.exceptions, name)]
    try:
        from typer._click import exceptions as vendored
    except ImportError:
        vendored = None
    if vendored is not None and hasattr(vendored, name):
        classes.append(getattr(vendored, name))
    return tuple(classes)


NO_ARGS_IS_HELP = _click_family("NoArgsIsHelpError")
USAGE_ERROR = _click_family("UsageError")
EXIT = _click_family("Exit")
ABORT = _click_family("Abort")

app = typer.Typer(
    name="cosim",
    help="Hardware-software co-design simulator: speed, energy and cost of ML workloads on any chip.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_commands() -> None:
    import cosim.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"cosim.cli.{info.name}")
            module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and exit with) 0 ok, 1 runtime failure, 2 bad input."""
    args = sys.argv[1:] if argv is None else argv
    try:
        rc = app(args=args, standalone_mode=False, prog_name="cosim")
    except CosimInputError as err:
        print(f"error: {err}", file=sys.stderr)
        _exit(2, argv)
        return 2
    except NO_ARGS_IS_HELP:
        _exit(0, argv)
        return 0
    except USAGE_ERROR as err:
        print(f"error: {err.format_message()}", file=sys.stderr)
        _exit(2, argv)
        return 2
    except EXIT as err:
        _exit(err.exit_code, argv)
        return err.exit_code
    except ABORT:
        print("aborted", file=sys.stderr)
        _exit(1, argv)
        return 1
    except Exception as err:  # one line, never a traceback, unless debugging
        if os.environ.get("COSIM_DEBUG"):
            raise
        print(f"error: internal failure: {type(err).__name__}: {err}", file=sys.stderr)
        _exit(1, argv)
        return 1
    code = rc if isinstance(rc, int) else 0
    _exit(code, argv)
    return code


def _exit(code: int, argv: list[str] | None) -> None:
    if argv is None:  # called as the console script
        sys.stdout.flush()
        sys.exit(code)


if __name__ == "__main__":
    main()
