"""``ray``: the job runs on an existing Ray cluster, through the Ray Jobs REST API.

The workspace process never imports ``ray``: it speaks HTTP to the dashboard of the head node
(``http://HEAD:8265``) with the standard library. A job becomes one Ray job:

- its workspace id is the Ray ``submission_id``, and ``metadata`` names the workspace;
- its entrypoint is ``cd <code snapshot> && exec <argv>`` (``{python}`` is the nodes' ``python``);
- its environment becomes the ``runtime_env``: pip packages as ``pip`` (Ray builds and caches a
  virtualenv per node by content), variables as ``env_vars``. A conda file's dependencies are
  translated to PyPI requirements as the venv builder does (:mod:`jupyter_mlws.environments.
  conda_pypi`; the notes go to the job's log; packages with no PyPI equivalent are refused by
  name). Docker steps, build contexts and ready images are refused until container runtimes
  are supported;
- the ``jupyter_mlws`` package (for ``from jupyter_mlws import run`` and the notebook runner) is
  put on the nodes' ``PYTHONPATH``: from shared storage when it is there, otherwise uploaded once
  to the cluster as a content-addressed ``py_modules`` package;
- the job's folder (code, inputs, outputs, logs, metrics) must be on storage every node mounts at
  the same path: the compute's ``settings.shared_paths`` lists those prefixes, and submission is
  refused when the workspace's artifact folder (or an input) is not under one. Without
  ``shared_paths``, a workspace with a remote artifact store (``artifact_uri``) sends the job's
  files through it instead (:mod:`jupyter_mlws.compute.ray.via_store`): the node runs the job in
  a temp folder of its own (:mod:`jupyter_mlws.compute.ray.worker`);
- ``cpus``/``gpus``/``memory`` and ``settings.resources`` become the entrypoint's resources
  (one CPU per job unless told otherwise, so concurrent jobs spread over the nodes);
- Ray's status drives the job: PENDING (runtime env setup, waiting for resources) is our
  Preparing, RUNNING is Running, SUCCEEDED / FAILED / STOPPED are Completed / Failed / Canceled;
  the Ray log is copied into the job's log while it runs; cancel stops the Ray job.

The optional Ray auth token (Ray's token mode) is read at each request from the environment
variable named by ``settings.token_env`` and sent as ``Authorization: Bearer``; it is never
stored in the compute definition, printed or logged.

Settings (``ws.computes.create(name, type="ray", address=..., settings={...})``):
``shared_paths`` (list of absolute prefixes; required without an artifact store), ``resources`` (custom Ray resources per
job, e.g. ``{"worker": 1}``), ``num_cpus`` (overrides ``cpus``; may be 0), ``python`` (default
``python``), ``token_env``, ``autoscaling`` (do not refuse resources no live node has).
"""

from jupyter_mlws.compute.ray.client import (
    RayHeadUnreachableError,
    RayJobsClient,
    cluster_info,
    describe_compute,
    normalize_address,
    token_from,
)
from jupyter_mlws.compute.ray.handle import RayJobHandle
from jupyter_mlws.compute.ray.packaging import package_zip
from jupyter_mlws.compute.ray.target import RayTarget

__all__ = ["RayHeadUnreachableError", "RayJobHandle", "RayJobsClient", "RayTarget",
           "cluster_info", "describe_compute", "normalize_address", "package_zip", "token_from"]
