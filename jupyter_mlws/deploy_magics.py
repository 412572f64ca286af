"""``%deploy`` and ``%mlws list endpoints``: online endpoints from a notebook.

``%deploy MODEL[:VER] --endpoint E [--deployment D] [--scoring-script F [--code DIR]]
[--environment ENV] [--instance-count N]`` creates the endpoint when it is missing, creates (or
updates, rolling) the deployment, sends all traffic to it when it is the endpoint's first, and
returns a live :class:`~jupyter_mlws.widgets.endpoint_monitor.EndpointMonitor`. An
``mlflow_model`` needs no ``--scoring-script`` (MLflow's pyfunc loads and serves it, so the
environment - by default this kernel's interpreter - needs ``mlflow``). Errors are one line, as
for the other magics; the workspace is the one ``%mlws`` uses.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from jupyter_mlws.errors import DeploymentFailedError, MlwsError, NotFoundError
from jupyter_mlws.magics import (
    LiveLog,
    MagicError,
    _one_line_errors,
    _parse,
    _Parser,
    _show_table,
    one_line,
)

#: The deployment name when ``--deployment`` is not given (Azure's examples start with blue).
DEFAULT_DEPLOYMENT = "blue"
ENDPOINT_KINDS = ("endpoint", "endpoints", "online-endpoints", "online-endpoint")


def make_deploy_parser() -> _Parser:
    p = _Parser(prog="%deploy", description="Deploy a registered model to an online endpoint.")
    p.add_argument("model", metavar="MODEL[:VERSION]",
                   help="a registered model (its latest version without :VERSION)")
    p.add_argument("--endpoint", "-e", required=True, help="created when it does not exist")
    p.add_argument("--deployment", "-d", default=DEFAULT_DEPLOYMENT)
    p.add_argument("--scoring-script", "-s", metavar="FILE",
                   help="a script with init() and run(raw_data), relative to --code "
                   "(not needed for an mlflow_model)")
    p.add_argument("--code", metavar="DIR", help="the folder snapshotted with the script "
                   "(default: the script's folder)")
    p.add_argument("--environment", "--env", metavar="ENV",
                   help="a registered environment (default: this kernel's interpreter)")
    p.add_argument("--instance-count", "-n", type=int, default=1, metavar="N")
    return p


def model_ref(text: str) -> str:
    """``name`` -> ``name@latest``; ``name:3`` and ``azureml:name:3`` as they are."""
    bare = text.removeprefix("azureml:")
    return text if ":" in bare or bare.endswith("@latest") else f"{bare}@latest"


def deployment_spec(args: Any) -> dict[str, Any]:
    """The facade's deployment spec from the parsed ``%deploy`` line."""
    spec: dict[str, Any] = {"name": args.deployment, "endpoint_name": args.endpoint,
                            "model": model_ref(args.model),
                            "instance_count": args.instance_count}
    if args.code and not args.scoring_script:
        raise MagicError("%deploy: --code needs --scoring-script (the script with init() and "
                         "run(raw_data) in that folder).")
    if args.scoring_script:
        script = Path(args.scoring_script).expanduser()
        if args.code:
            code, name = Path(args.code).expanduser(), args.scoring_script
        else:
            code, name = script.parent, script.name
        spec["code_configuration"] = {"code": str(code.resolve()), "scoring_script": str(name)}
    if args.environment:
        spec["environment"] = args.environment
    return spec


def show_endpoints(ws: Any) -> None:
    """``%mlws list endpoints``: each deployment of each endpoint, as a table."""
    from jupyter_mlws.endpoints.views import list_with_deployments

    rows = []
    for ep in list_with_deployments(ws):
        deps = ep["deployment_list"] or [None]
        for d in deps:
            rows.append((ep["name"], ep["scoring_uri"],
                         "" if d is None else d["name"], "" if d is None else d["state"],
                         "" if d is None else f"{d['replicas_ready']}/{d['instance_count']}",
                         "" if d is None else f"{d['traffic']}%",
                         "" if d is None else d.get("model") or ""))
    _show_table(["endpoint", "scoring uri", "deployment", "state", "replicas", "traffic",
                 "model"], rows, "No endpoints yet. Deploy a model with %deploy.")


@magics_class
class DeployMagics(Magics):
    """``%deploy``; shares the workspace of :class:`~jupyter_mlws.magics.MlwsMagics`."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._parser = make_deploy_parser()

    @property
    def ws(self) -> Any:
        mlws = self.shell.magics_manager.registry.get("MlwsMagics") if self.shell else None
        if mlws is None:
            raise MagicError("%deploy: load the extension first: %load_ext jupyter_mlws")
        return mlws.ws

    @line_magic
    def deploy(self, line: str) -> Any:
        """Deploy a registered model to an online endpoint; returns a live endpoint widget."""
        return self._deploy(line)

    @_one_line_errors
    def _deploy(self, line: str) -> Any:
        from jupyter_mlws.endpoints.views import check_refs
        from jupyter_mlws.widgets.endpoint_monitor import EndpointMonitor

        args = _parse(self._parser, line)
        if args.instance_count < 1:
            raise MagicError("%deploy: --instance-count must be 1 or more.")
        spec = deployment_spec(args)
        ws = self.ws
        check_refs(ws, spec)  # an unknown model or environment: before any endpoint
        try:
            endpoint = ws.endpoints.show(args.endpoint)
        except NotFoundError:
            endpoint = ws.endpoints.create({"name": args.endpoint})
            print(f"Created endpoint {args.endpoint} ({endpoint['scoring_uri']}).")
        first = not any(v > 0 for v in endpoint["traffic"].values())
        live = LiveLog(f"Deploying {spec['model']} to {args.endpoint}/{args.deployment}",
                       tail=15, in_kernel=getattr(self.shell, "kernel", None) is not None)
        t0 = time.monotonic()
        try:
            ws.endpoints.create_deployment(spec, all_traffic=first, log=live.add)
        except DeploymentFailedError as exc:
            live.finish(f"Failed after {time.monotonic() - t0:.1f} s.")
            from IPython.display import display

            display(EndpointMonitor(ws, args.endpoint, args.deployment, autostart=False))
            reason = str(exc.details.get("error") or exc.message).strip().splitlines()
            raise MagicError(f"%deploy: the deployment {args.deployment} of {args.endpoint} "
                             f"Failed: {reason[-1] if reason else ''} (its traceback and log "
                             "are shown above; the traffic was not changed)") from None
        except MlwsError as exc:
            live.finish("")
            raise MagicError(one_line(exc)) from None
        live.finish(f"Succeeded in {time.monotonic() - t0:.1f} s"
                    + (f"; all traffic goes to {args.deployment}." if first else "."))
        return EndpointMonitor(ws, args.endpoint, args.deployment)

