"""The README's `rlhf` command table lists every command and subcommand that exists, and no other.

The table's rows are `| \\`rlhf PATH ARGS\\` | what it does |`; this test walks the Typer app and compares the
command paths. On a mismatch it prints the table generated from the app (`python tests/test_readme.py`
prints it too), so the README is fixed by pasting, not by guessing.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
ROW = re.compile(r"^\|\s*`rlhf ([^`]+)`\s*\|")


def app_commands() -> dict[str, str]:
    """{"import dataset PATH": first help line} for every leaf command of the `rlhf` app."""
    import typer.main

    from rlhf.cli import _register, app

    _register()
    out: dict[str, str] = {}

    def walk(cmd, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                walk(sub, [*path, name])
            return
        args = [p.name.upper() for p in cmd.params if getattr(p, "param_type_name", "") == "argument"]
        out[" ".join(path + args)] = (cmd.help or "").strip().splitlines()[0]

    walk(typer.main.get_command(app), [])
    return out


def command_path(usage: str) -> str:
    """`import dataset PATH [--approved-by NAME]` -> `import dataset` (words up to the first argument or option)."""
    words = []
    for w in usage.split():
        if w.isupper() or w.startswith(("-", "[", "<", "NAME@")):
            break
        words.append(w)
    return " ".join(words)


def table() -> str:
    rows = [f"| `rlhf {usage}` | {help.replace('|', '/')} |" for usage, help in app_commands().items()]
    return "\n".join(["| command | what it does |", "|---|---|", *rows])


def test_readme_lists_every_rlhf_command():
    listed = {command_path(m[1]) for line in README.read_text().splitlines() if (m := ROW.match(line))}
    existing = {command_path(usage) for usage in app_commands()}
    missing, stale = sorted(existing - listed), sorted(listed - existing)
    assert not missing and not stale, (f"README.md's command table is out of date: missing {missing}, no such command "
                                       f"{stale}. The table from the app:\n{table()}")


def test_command_path():
    assert command_path("import dataset PATH") == "import dataset"
    assert command_path("users passwd NAME") == "users passwd"
    assert command_path("registry snapshot NAME [--include-pending]") == "registry snapshot"


if __name__ == "__main__":
    print(table())
