"""The `rlhf` command line. Each command group lives in its own module and is added here.

A user mistake (RlhfError) prints one line `error: ...` and exits with code 2; never a traceback.
"""

from __future__ import annotations

import sys

import typer

from rlhf.errors import RlhfError

app = typer.Typer(help="RLHF alignment service: data, registry, models.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


def _register() -> None:
    from rlhf.cli import data  # noqa: F401  import, registry, models
    from rlhf.cli import interop  # noqa: F401  export, import dataset|label-studio|argilla, models show|export

    for optional in ("rm", "users", "review", "loop"):  # command groups added by later parts of the project
        try:
            __import__(f"rlhf.cli.{optional}")
        except ModuleNotFoundError as e:
            if e.name != f"rlhf.cli.{optional}":
                raise


def main(argv: list[str] | None = None) -> None:
    from rlhf.quiet import quiet

    quiet()  # before the libraries load: their known-harmless notices stay off the terminal
    _register()
    try:
        app(args=argv, prog_name="rlhf", standalone_mode=True)
    except RlhfError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
