"""The ``mlws`` command. It holds no logic: it parses, calls the Workspace, and prints.

Readable tables by default, ``-o json`` for scripts. Errors print one line to stderr and exit 1.
One module per command group: :mod:`.workspace`, :mod:`.env` (environments and base images),
:mod:`.assets` (models, data, components, computes), :mod:`.datastore`, :mod:`.job`,
:mod:`.registry`;
:mod:`._format` holds the tables and sizes shared with the magics.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from jupyter_mlws.cli._common import MlwsGroup
from jupyter_mlws.cli._format import emit, print_table
from jupyter_mlws.cli.assets import (
    component_group,
    compute_group,
    create_any,
    data_group,
    model_group,
)
from jupyter_mlws.cli.datastore import datastore_group
from jupyter_mlws.cli.endpoint import deployment_group, endpoint_group
from jupyter_mlws.cli.env import env_group, image
from jupyter_mlws.cli.job import job
from jupyter_mlws.cli.registry import registry_group
from jupyter_mlws.cli.workspace import schema_cmd, workspace
from jupyter_mlws.errors import MlwsError


@click.group(cls=MlwsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jupyter_mlws", prog_name="mlws")
def main() -> None:
    """A local-first machine-learning workspace: environments, models, data, components,
    datastores and computes, versioned in an embedded store."""


for _command in (workspace, schema_cmd, env_group, image, model_group, data_group,
                 component_group, datastore_group, compute_group, job, create_any,
                 endpoint_group, deployment_group, registry_group):
    main.add_command(_command)


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


__all__ = ["emit", "main", "print_table", "run"]
