"""Online endpoints: Azure-style managed online endpoints served on this machine.

- :mod:`.specs`: ``managedOnlineEndpoint`` / ``managedOnlineDeployment`` YAML.
- :mod:`.operations`: ``ws.endpoints`` (create, show, invoke, deployments, logs).
- :mod:`.supervisor`: one detached process per endpoint, owning its port and replicas.
- :mod:`.router`: key check, traffic split, forwarding to replicas.
- :mod:`.replicas` / :mod:`.replica`: the scoring processes (``init()`` / ``run()``).
"""

from jupyter_mlws.endpoints.specs import DeploymentSpec, EndpointSpec, parse_traffic

__all__ = ["DeploymentSpec", "EndpointSpec", "parse_traffic"]
