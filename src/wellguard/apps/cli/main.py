"""``wellguard``: one command line for operators.

Commands that change state talk to the running hub over its REST API with the admin
credentials ``init`` wrote, so effects on live connections happen in one place.
``init`` and ``up`` work on the data folder directly, and so does ``audit verify``
(an auditor can check the chain with the hub stopped).
"""

from __future__ import annotations

import sys

import click

from wellguard import __version__
from wellguard.apps.cli import (
    commands_device,
    commands_hub,
    commands_messaging,
    commands_routing,
)
from wellguard.errors import AuthError, ConfigError, WellguardError

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wellguard")
def cli() -> None:
    """wellguard: a self-hosted IoT hub, secure end to end."""


for group in (commands_hub, commands_device, commands_messaging, commands_routing):
    for command in group.COMMANDS:
        cli.add_command(command)


def main() -> None:
    """Entry point: run the CLI, turning wellguard errors into one clear line."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AuthError:
        click.echo("error: the hub refused the admin credentials", err=True)
        sys.exit(3)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except WellguardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
