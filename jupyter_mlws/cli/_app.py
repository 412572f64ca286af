"""The ``mlws`` click command tree (see :mod:`jupyter_mlws.cli`): the root group, whose
command groups are imported when they run, and :func:`run` for in-process use."""

from __future__ import annotations

from collections.abc import Sequence

import click

from jupyter_mlws.cli._common import MlwsGroup
from jupyter_mlws.errors import MlwsError

#: Command name -> (module, attribute). A command's module is imported when the command runs
#: (or for ``--help``), so ``mlws job notebook`` loads neither the asset nor the endpoint code.
COMMANDS: dict[str, tuple[str, str]] = {
    "workspace": ("workspace", "workspace"),
    "schema": ("workspace", "schema_cmd"),
    "env": ("env", "env_group"),
    "image": ("env", "image"),
    "model": ("assets", "model_group"),
    "data": ("assets", "data_group"),
    "component": ("assets", "component_group"),
    "datastore": ("datastore", "datastore_group"),
    "compute": ("assets", "compute_group"),
    "job": ("job", "job"),
    "create": ("assets", "create_any"),
    "online-endpoint": ("endpoint", "endpoint_group"),
    "online-deployment": ("endpoint", "deployment_group"),
    "registry": ("registry", "registry_group"),
}


class LazyGroup(MlwsGroup):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            import importlib

            module, attr = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(f"jupyter_mlws.cli.{module}"),
                                     attr), cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jupyter_mlws", prog_name="mlws")
def main() -> None:
    """A local-first machine-learning workspace: environments, models, data, components,
    datastores and computes, versioned in an embedded store."""


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process; returns the exit status (for tests and embedding)."""
    try:
        main.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except MlwsError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    return 0


__all__ = ["COMMANDS", "LazyGroup", "main", "run"]
