"""The `helixflow` command.

Subcommands live next to the code they drive and are imported only when called, so `helixflow validate`
does not pay for numba or ray imports.
"""

from __future__ import annotations

import importlib

import click

from helixflow import __version__

# name -> "module:attribute" of a click command
COMMANDS = {
    "validate": "helixflow_local.commands.validate:validate_command",
    "run": "helixflow_local.commands.local:run_command",
    "demo": "helixflow_local.commands.local:demo_command",
    "local": "helixflow_local.commands.local:local_group",
    "preprocess": "helixflow_local.commands.preprocess:preprocess_command",
    "align": "helixflow_local.commands.phase2:align_command",
    "cluster": "helixflow_local.commands.phase2:cluster_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="helixflow")
def main() -> None:
    """helixflow: FASTQ in a bucket -> validated, cleaned, embedded, aligned, reported."""
