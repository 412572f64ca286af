"""Online endpoints: Azure-style managed online endpoints served on this machine.

- :mod:`.specs`: ``managedOnlineEndpoint`` / ``managedOnlineDeployment`` YAML.
- :mod:`.operations`: ``ws.endpoints`` (create, show, invoke, deployments, logs).
- :mod:`.supervisor`: one detached process per endpoint, owning its port and replicas.
- :mod:`.router`: key check, traffic split, forwarding to replicas.
- :mod:`.replicas` / :mod:`.replica`: the scoring processes (``init()`` / ``run()``), with
  liveness/readiness probes; :mod:`.containers`: replicas as Docker containers of the
  environment's image (an endpoint whose ``compute`` is docker).
- :mod:`.resolve`: model, environment and code of a deployment (and where it runs);
  :mod:`.mlflow_score`: the scoring script of a no-code MLflow deployment.
- :mod:`.lineage`: which deployments use a model or an environment.
"""

from jupyter_mlws.endpoints.specs import DeploymentSpec, EndpointSpec, parse_traffic

__all__ = ["DeploymentSpec", "EndpointSpec", "parse_traffic"]
