"""``mlws online-endpoint ...`` and ``mlws online-deployment ...``, as ``az ml`` spells them.

``--local`` is accepted (every endpoint here is local) and changes nothing. Keys are printed by
``get-credentials`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from jupyter_mlws.cli._common import OUTPUT, WORKSPACE, open_workspace
from jupyter_mlws.cli._format import emit, print_table
from jupyter_mlws.errors import MlwsError, ValidationError

LOCAL = click.option("--local", is_flag=True, help="Accepted for az ml compatibility; "
                     "every endpoint here is local.")
ENDPOINT = click.option("-e", "--endpoint-name", "endpoint", required=True,
                        help="The endpoint's name.")
SHOW_OUTPUT = click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]),
                           default="yaml", show_default=True, help="Output format.")


@click.group("online-endpoint")
def endpoint_group() -> None:
    """Online endpoints: one local port that routes to deployments by traffic."""


@click.group("online-deployment")
def deployment_group() -> None:
    """Deployments of an online endpoint: a model, a scoring script, an environment."""


def _show(data: Any, output: str) -> None:
    emit(data, "yaml" if output == "table" else output)


@endpoint_group.command("create")
@click.option("-f", "--file", "file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A managedOnlineEndpoint YAML file.")
@click.option("-n", "--name", help="Overrides the file's name.")
@LOCAL
@WORKSPACE
@SHOW_OUTPUT
def ep_create(file: str, name: str | None, local: bool, workspace_path: str | None,
              output: str) -> None:
    """Create an endpoint from YAML; its supervisor starts at once."""
    from jupyter_mlws.assets.yaml_io import load_yaml, validate_spec
    from jupyter_mlws.endpoints.specs import EndpointSpec

    data, index = load_yaml(file)
    if name and isinstance(data, dict):
        data["name"] = name
    spec = validate_spec(EndpointSpec, data, source=file, index=index)
    with open_workspace(workspace_path) as ws:
        _show(ws.endpoints.create(spec), output)


@endpoint_group.command("show")
@click.option("-n", "--name", required=True)
@LOCAL
@WORKSPACE
@SHOW_OUTPUT
def ep_show(name: str, local: bool, workspace_path: str | None, output: str) -> None:
    """Show an endpoint (its supervisor is started again when it died)."""
    with open_workspace(workspace_path) as ws:
        _show(ws.endpoints.show(name), output)


@endpoint_group.command("list")
@LOCAL
@WORKSPACE
@OUTPUT
def ep_list(local: bool, workspace_path: str | None, output: str) -> None:
    """List endpoints."""
    with open_workspace(workspace_path) as ws:
        rows = ws.endpoints.list()
    emit(rows, output, table=lambda: print_table(
        [{**r, "traffic": ", ".join(f"{k}={v}" for k, v in r["traffic"].items()),
          "deployments": ", ".join(f"{k}:{v}" for k, v in r["deployments"].items())}
         for r in rows],
        [("name", "name"), ("scoring_uri", "scoring uri"), ("runtime", "runs as"),
         ("traffic", "traffic"), ("deployments", "deployments")]))


@endpoint_group.command("start")
@click.option("-n", "--name", help="The endpoint (every endpoint when left out).")
@LOCAL
@WORKSPACE
@SHOW_OUTPUT
def ep_start(name: str | None, local: bool, workspace_path: str | None, output: str) -> None:
    """Start endpoint supervisors that are not running (e.g. after a machine restart)."""
    with open_workspace(workspace_path) as ws:
        shown = ws.endpoints.start(name)
    _show(shown[0] if name else shown, output)


@endpoint_group.command("update")
@click.option("-n", "--name", help="The endpoint (or the file's name).")
@click.option("-f", "--file", "file", type=click.Path(exists=True, dir_okay=False),
              help="A managedOnlineEndpoint YAML file: description, tags, traffic, "
              "mirror_traffic.")
@click.option("--traffic", help='The split, e.g. "blue=90 green=10".')
@click.option("--mirror-traffic", "mirror", help='Copy a share of requests to a deployment, '
              'e.g. "green=10" (answers discarded; "" stops it).')
@LOCAL
@WORKSPACE
@SHOW_OUTPUT
def ep_update(name: str | None, file: str | None, traffic: str | None, mirror: str | None,
              local: bool, workspace_path: str | None, output: str) -> None:
    """Change the traffic split (it must name deployments of the endpoint and sum to 100), the
    mirror traffic, or the endpoint from its YAML."""
    if file is None and (name is None or (traffic is None and mirror is None)):
        raise ValidationError("Give -f FILE, or -n NAME with --traffic and/or --mirror-traffic.",
                              hint='Example: mlws online-endpoint update -n my-ep '
                              '--traffic "blue=90 green=10".')
    with open_workspace(workspace_path) as ws:
        if file is not None:
            from jupyter_mlws.assets.yaml_io import load_yaml, validate_spec
            from jupyter_mlws.endpoints.specs import EndpointSpec

            data, index = load_yaml(file)
            if name and isinstance(data, dict):
                data["name"] = name
            name = ws.endpoints.update(validate_spec(EndpointSpec, data, source=file,
                                                     index=index))["name"]
        assert name is not None
        if traffic is not None:
            ws.endpoints.update_traffic(name, traffic)
        if mirror is not None:
            ws.endpoints.update_mirror_traffic(name, mirror)
        _show(ws.endpoints.show(name), output)


@endpoint_group.command("delete")
@click.option("-n", "--name", required=True)
@click.option("-y", "--yes", is_flag=True, help="Accepted for az ml compatibility.")
@click.option("--no-wait", is_flag=True, help="Accepted for az ml compatibility.")
@LOCAL
@WORKSPACE
def ep_delete(name: str, yes: bool, no_wait: bool, local: bool,
              workspace_path: str | None) -> None:
    """Stop the endpoint's supervisor and replicas and forget it."""
    with open_workspace(workspace_path) as ws:
        ws.endpoints.delete(name)
    click.echo(f"deleted online endpoint {name}")


@endpoint_group.command("invoke")
@click.option("-n", "--name", required=True)
@click.option("-r", "--request-file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-d", "--deployment-name", "deployment", help="Send to this deployment only.")
@LOCAL
@WORKSPACE
def ep_invoke(name: str, request_file: str, deployment: str | None, local: bool,
              workspace_path: str | None) -> None:
    """Send the request file to the endpoint; print the answer."""
    body = Path(request_file).read_bytes()
    with open_workspace(workspace_path) as ws:
        result = ws.endpoints.invoke(name, body, deployment=deployment)
    if not result.ok:
        raise MlwsError(f"The endpoint answered {result.status} (deployment "
                        f"{result.deployment or '-'}): {result.body}")
    click.echo(result.body)


@endpoint_group.command("get-credentials")
@click.option("-n", "--name", required=True)
@WORKSPACE
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default="json",
              show_default=True)
def ep_credentials(name: str, workspace_path: str | None, output: str) -> None:
    """Print the endpoint's primary and secondary keys."""
    with open_workspace(workspace_path) as ws:
        emit(ws.endpoints.credentials(name), output)


@endpoint_group.command("regenerate-keys")
@click.option("-n", "--name", required=True)
@click.option("--key-type", type=click.Choice(["primary", "secondary"]), default="primary",
              show_default=True)
@WORKSPACE
def ep_regenerate(name: str, key_type: str, workspace_path: str | None) -> None:
    """Replace one key (the other keeps working)."""
    with open_workspace(workspace_path) as ws:
        ws.endpoints.regenerate_keys(name, key_type)
    click.echo(f"regenerated the {key_type} key of {name}")


def _deployment_spec(file: str, name: str | None, endpoint: str | None) -> Any:
    from jupyter_mlws.assets.yaml_io import load_yaml, validate_spec
    from jupyter_mlws.endpoints.specs import DeploymentSpec

    data, index = load_yaml(file)
    if not isinstance(data, dict):
        raise ValidationError(f"{file} does not hold a mapping.")
    data.update({k: v for k, v in {"name": name, "endpoint_name": endpoint}.items() if v})
    return validate_spec(DeploymentSpec, data, source=file, index=index)


@deployment_group.command("create")
@click.option("-f", "--file", "file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A managedOnlineDeployment YAML file.")
@click.option("-n", "--name", help="Overrides the file's name.")
@click.option("-e", "--endpoint-name", "endpoint", help="Overrides the file's endpoint_name.")
@click.option("--all-traffic", is_flag=True, help="Send all traffic to it once it succeeded.")
@LOCAL
@WORKSPACE
@SHOW_OUTPUT
def dep_create(file: str, name: str | None, endpoint: str | None, all_traffic: bool,
               local: bool, workspace_path: str | None, output: str) -> None:
    """Create a deployment from YAML and wait until it Succeeded (or Failed)."""
    spec = _deployment_spec(file, name, endpoint)
    with open_workspace(workspace_path) as ws:
        view = ws.endpoints.create_deployment(
            spec, all_traffic=all_traffic, base_dir=Path(file).resolve().parent,
            log=lambda line: click.echo(line, err=True))
    _show(view, output)


@deployment_group.command("update")
@click.option("-f", "--file", "file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A managedOnlineDeployment YAML file.")
@click.option("-n", "--name", help="Overrides the file's name.")
@click.option("-e", "--endpoint-name", "endpoint", help="Overrides the file's endpoint_name.")
@LOCAL
@WORKSPACE
@SHOW_OUTPUT
def dep_update(file: str, name: str | None, endpoint: str | None, local: bool,
               workspace_path: str | None, output: str) -> None:
    """Roll a deployment to the file's spec: its old replicas serve until the new are ready,
    and a Failed update leaves the old ones serving."""
    spec = _deployment_spec(file, name, endpoint)
    with open_workspace(workspace_path) as ws:
        view = ws.endpoints.update_deployment(
            spec, base_dir=Path(file).resolve().parent,
            log=lambda line: click.echo(line, err=True))
    _show(view, output)


@deployment_group.command("show")
@click.option("-n", "--name", required=True)
@ENDPOINT
@LOCAL
@WORKSPACE
@SHOW_OUTPUT
def dep_show(name: str, endpoint: str, local: bool, workspace_path: str | None,
             output: str) -> None:
    """Show a deployment: state, error, replicas, restarts."""
    with open_workspace(workspace_path) as ws:
        _show(ws.endpoints.show_deployment(endpoint, name), output)


@deployment_group.command("list")
@ENDPOINT
@LOCAL
@WORKSPACE
@OUTPUT
def dep_list(endpoint: str, local: bool, workspace_path: str | None, output: str) -> None:
    """List the deployments of an endpoint."""
    with open_workspace(workspace_path) as ws:
        rows = ws.endpoints.list_deployments(endpoint)
    emit(rows, output, table=lambda: print_table(
        rows, [("name", "name"), ("state", "state"), ("traffic", "traffic %"),
               ("model", "model"), ("environment", "environment"),
               ("replicas_ready", "ready"), ("restarts", "restarts")]))


@deployment_group.command("delete")
@click.option("-n", "--name", required=True)
@ENDPOINT
@click.option("-y", "--yes", is_flag=True, help="Accepted for az ml compatibility.")
@LOCAL
@WORKSPACE
def dep_delete(name: str, endpoint: str, yes: bool, local: bool,
               workspace_path: str | None) -> None:
    """Stop a deployment's replicas and forget it (refused while it takes traffic)."""
    with open_workspace(workspace_path) as ws:
        ws.endpoints.delete_deployment(endpoint, name)
    click.echo(f"deleted deployment {name} of {endpoint}")


@deployment_group.command("get-logs")
@click.option("-n", "--name", required=True)
@ENDPOINT
@click.option("-l", "--lines", default=100, show_default=True, type=click.IntRange(min=0))
@click.option("--follow", is_flag=True, help="Keep printing what the replicas write (Ctrl-C).")
@LOCAL
@WORKSPACE
def dep_logs(name: str, endpoint: str, lines: int, follow: bool, local: bool,
             workspace_path: str | None) -> None:
    """Print the last lines of the deployment's log."""
    with open_workspace(workspace_path) as ws:
        if not follow:
            click.echo(ws.endpoints.logs(endpoint, name, lines=lines))
            return
        try:
            for chunk in ws.endpoints.follow_logs(endpoint, name, lines=lines):
                click.echo(chunk, nl=False)
        except KeyboardInterrupt:
            pass
