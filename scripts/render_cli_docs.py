"""Render docs/cli.md from the click commands themselves, so the reference cannot drift from the CLI.

`.venv/bin/python scripts/render_cli_docs.py > docs/cli.md`; a test keeps the committed file current.
"""
from __future__ import annotations

import click

from fiftyone_mslite.cli import main

HEADER = """# CLI reference

Generated from the commands by `.venv/bin/python scripts/render_cli_docs.py > docs/cli.md`. Every command prints for
people by default and a machine-readable JSON summary with `--json` (`predict --json`: one object per image per line).
Exit status: 0 on success, 1 on an error (message on stderr, or a JSON `{"error", "message"}` with `--json`) or
when some images/samples failed, 130 after Ctrl-C (whenever it comes; `annotate` also prints the command that
resumes). An unexpected error (a bug) is one line too, ending "rerun with `--traceback` and report it":
`fiftyone-mslite --traceback COMMAND ...` shows its full traceback.
"""


def _commands(group: click.Group, prefix: str):
    for name in sorted(group.commands):
        cmd = group.commands[name]
        path = f"{prefix} {name}".strip()
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


def render() -> str:
    parts = [HEADER]
    for path, cmd in _commands(main, ""):
        ctx = click.Context(cmd, info_name=f"fiftyone-mslite {path}", terminal_width=100, max_content_width=100)
        help_text = cmd.get_help(ctx).replace("Usage: ", "", 1)
        parts.append(f"## `fiftyone-mslite {path}`\n\n```text\n{help_text}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
