"""Renders the command reference (``docs/cli.md``) from the click command tree."""

from __future__ import annotations

import click

__all__ = ["render_reference"]


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            found.extend(_walk(command.commands[name], [*path, name]))
    return found


def render_reference(root: click.Group) -> str:
    """Markdown for every command: usage, help and options."""
    lines = [
        "# Command reference",
        "",
        "Generated from the code by `make docs` (`python -m wellguard.apps.cli.reference`);",
        "`tests/unit/test_cli_reference.py` fails when it is out of date.",
        "",
        "Every command that prints data takes `--format json|table`; JSON output is stable.",
        "`--data DIR` defaults to `$WELLGUARD_DATA`, else `./wg-data`.",
        "",
    ]
    for path, command in _walk(root, ["wellguard"])[1:]:
        ctx = click.Context(
            command, info_name=" ".join(path), terminal_width=100, max_content_width=100
        )
        lines.append(f"{'#' * min(len(path), 4)} `{' '.join(path)}`")
        lines.append("")
        lines.append("```")
        lines.append(command.get_usage(ctx))
        lines.append("```")
        lines.append("")
        if command.help:
            lines.append(command.help.strip())
            lines.append("")
        params = [
            p
            for p in command.get_params(ctx)
            if isinstance(p, click.Option) and "--help" not in p.opts
        ]
        if params:
            lines.append("| option | meaning |")
            lines.append("|---|---|")
            for param in params:
                record = param.get_help_record(ctx)
                if record is None:
                    continue
                names, text = record
                lines.append(f"| `{names.replace('|', ', ')}` | {text.replace('|', '/')} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    from wellguard.apps.cli.main import cli

    click.echo(render_reference(cli), nl=False)
