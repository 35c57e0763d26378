"""The `helixflow` command.

Subcommands live next to the code they drive and are imported only when called, so `helixflow validate`
does not pay for numba or ray imports.

Every failure leaves through one place, ``LazyGroup.main``: one line on stderr and an exit status from
``exit_codes`` (the table `helixflow --help` prints). Commands raise; they never print errors or pick statuses.
"""

from __future__ import annotations

import importlib
import sys

import click

from helixflow import __version__
from helixflow_local.exit_codes import ExitCode, classify, epilog

# name -> "module:attribute" of a click command
COMMANDS = {
    "validate": "helixflow_local.commands.validate:validate_command",
    "run": "helixflow_local.commands.local:run_command",
    "resume": "helixflow_local.commands.local:resume_command",
    "demo": "helixflow_local.commands.local:demo_command",
    "local": "helixflow_local.commands.local:local_group",
    "console": "helixflow_local.commands.local:console_command",
    "preprocess": "helixflow_local.commands.preprocess:preprocess_command",
    "align": "helixflow_local.commands.phase2:align_command",
    "cluster": "helixflow_local.commands.phase2:cluster_command",
    "simulate": "helixflow_local.commands.simulate:simulate_command",
    "profile": "helixflow_local.commands.simulate:profile_command",
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

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: ARG002
        """Run the command and turn whatever it raised into one stderr line and a documented exit status.

        click's own standalone handling is off: it prints usage errors over three lines, "Aborted!" for
        Ctrl-C, and lets every other exception out as a traceback."""
        try:
            # The program is `helixflow` however it was started (entry point, `python -c`, CliRunner), so the
            # hints in error lines name a command the user can type.
            status = super().main(args, "helixflow", complete_var, standalone_mode=False, **extra)
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - the one place every failure is named
            status, line = classify(exc)
            click.echo(line, err=True)
        # click returns the code of an explicit ctx.exit (--help, --version) and None after a normal run.
        sys.exit(int(status) if isinstance(status, int) else ExitCode.SUCCESS)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=epilog())
@click.version_option(__version__, prog_name="helixflow")
def main() -> None:
    """helixflow: FASTQ in a bucket -> validated, cleaned, embedded, aligned, reported."""
