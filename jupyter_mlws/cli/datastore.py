"""``mlws datastore ...``: folders and fsspec URLs, with credentials kept off the command line.

A credential is given without putting the secret in argv (which other users see in ``ps``):
``--credential KEY`` prompts for it (hidden input), ``--credential-env KEY=ENVVAR`` reads it from
the environment, ``--credential-file FILE`` reads a YAML/JSON mapping. ``--credential KEY=VALUE``
still works, with a warning. No secret is ever printed, not even in an error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import click

from jupyter_mlws.cli._common import OUTPUT, WORKSPACE, parse_tags, with_options
from jupyter_mlws.cli.assets import (
    COMMON_CREATE,
    FILE_OPT,
    create_from_file_or,
    created,
    kind_group,
)
from jupyter_mlws.errors import MlwsError, ValidationError

ARGV_WARNING = (
    "warning: --credential {key}=VALUE puts the secret on the command line, where other users "
    "of this machine can read it (ps, /proc) and your shell history keeps it. Use "
    "--credential {key} (asks for it), --credential-env {key}=ENVVAR or --credential-file FILE."
)

datastore_group = kind_group("datastore", "datastore", "Datastores: folders and fsspec URLs.")


def _from_file(path: str) -> dict[str, str]:
    """A YAML/JSON mapping of credential names to values; errors never quote the file."""
    from jupyter_mlws.assets.yaml_io import load_yaml

    try:
        data, _index = load_yaml(path)
    except MlwsError:
        raise ValidationError(f"The credential file {path!r} is not readable YAML or JSON.",
                              hint="Write one 'key: value' per line (or a JSON object).") from None
    if not isinstance(data, dict):
        raise ValidationError(f"The credential file {path!r} does not hold a mapping.",
                              hint="Write one 'key: value' per line (or a JSON object).")
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float)) \
                or isinstance(value, bool):
            raise ValidationError(
                f"In the credential file {path!r}, the entry {str(key)!r} is not a "
                "name with a text value.", hint="Quote the value, e.g. key: 'value'.")
        out[key] = str(value)
    return out


def _from_env(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, var = item.partition("=")
        if not sep or not key or not var:
            raise click.BadParameter(f"{item!r} must look like KEY=ENVVAR",
                                     param_hint="--credential-env")
        if var not in os.environ:
            raise ValidationError(f"The environment variable {var!r} (for the credential "
                                  f"{key!r}) is not set.",
                                  hint=f"Export it first: export {var}=...")
        out[key] = os.environ[var]
    return out


def collect_credentials(given: Sequence[str], env: Sequence[str], file: str | None
                        ) -> dict[str, str]:
    """Credentials from ``--credential-file``, then ``--credential-env``, then ``--credential``
    (later ones win); a bare ``--credential KEY`` prompts with hidden input."""
    out = _from_file(file) if file else {}
    out.update(_from_env(env))
    for item in given:
        key, sep, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"{item!r} has no key", param_hint="--credential")
        if sep:
            click.echo(ARGV_WARNING.format(key=key), err=True)
        else:
            value = click.prompt(f"Value of credential {key}", hide_input=True,
                                 err=True, show_default=False)
        out[key] = value
    return out


@datastore_group.command("create")
@FILE_OPT
@click.option("-n", "--name")
@click.option("--type", "ds_type", type=click.Choice(["local", "fsspec"]), default="local",
              show_default=True)
@click.option("--path", type=click.Path(file_okay=False), help="Folder of a local datastore.")
@click.option("--url", help="URL of an fsspec datastore, e.g. s3://bucket/prefix.")
@click.option("--credential", "credentials", multiple=True, metavar="KEY",
              help="A credential to ask for (hidden input); KEY=VALUE works but shows the "
              "secret to other users of the machine (repeatable).")
@click.option("--credential-env", "credential_env", multiple=True, metavar="KEY=ENVVAR",
              help="A credential read from an environment variable (repeatable).")
@click.option("--credential-file", type=click.Path(exists=True, dir_okay=False),
              help="A YAML or JSON file mapping credential names to values.")
@WORKSPACE
@OUTPUT
def datastore_create(file: str | None, name: str | None, ds_type: str, path: str | None,
                     url: str | None, credentials: Sequence[str], credential_env: Sequence[str],
                     credential_file: str | None, version: str | None,
                     description: str | None, tags: Sequence[str], workspace_path: str | None,
                     output: str) -> None:
    """Register a datastore from a YAML file or options."""
    if file and (credentials or credential_env or credential_file):
        # never drop them silently: the datastore would be registered without them
        raise click.UsageError(
            "the --credential options do not apply to -f FILE; give the datastore with "
            "options (-n, --type, --url) and its credentials, or list them under "
            "'credentials:' in the file")

    def build(ws: Any) -> Any:
        secrets = collect_credentials(credentials, credential_env, credential_file)
        return ws.datastores.create(name, type=ds_type, path=path, url=url,
                                    credentials=secrets, description=description,
                                    tags=parse_tags(tags))

    created(create_from_file_or("datastore", file, workspace_path, build, {"name": name}),
            output)


datastore_create = with_options(COMMON_CREATE, datastore_create)

__all__ = ["collect_credentials", "datastore_group"]
