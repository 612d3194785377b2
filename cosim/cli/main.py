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
    except click.exceptions.NoArgsIsHelpError:
        _exit(0, argv)
        return 0
    except click.UsageError as err:
        print(f"error: {err.format_message()}", file=sys.stderr)
        _exit(2, argv)
        return 2
    except click.exceptions.Exit as err:
        _exit(err.exit_code, argv)
        return err.exit_code
    except click.Abort:
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
