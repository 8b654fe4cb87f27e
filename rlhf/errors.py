"""Errors meant for people: one line that says what was wrong, where, and what to do."""

from __future__ import annotations


class RlhfError(Exception):
    """A user-facing error. The CLI prints it as one line and exits with code 2."""


class InputError(RlhfError):
    """Bad input in a file: rendered as `FILE:LINE: FIELD: what is wrong`."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str):
        self.file, self.line, self.field, self.message = file, line, field, message
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class NotFoundError(RlhfError):
    """An unknown `NAME@vN`, model path or record."""


class IntegrityError(RlhfError):
    """A stored snapshot or checkpoint does not match what was recorded (tampered or partial)."""


def run_or_exit(main) -> None:
    """Run a stage's `main()`: an RlhfError becomes one line `error: ...` on stderr and exit code 2."""
    import sys

    try:
        main()
    except RlhfError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
