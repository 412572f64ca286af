"""Set up (``up``) or remove (``down``) what the outdated-environment browser test looks at.

``up``, in the workspace of $MLWS_WORKSPACE (the one the test server serves): copies the offline
base under a throwaway tag, registers ``ui-outdated`` on it (an unpinned ``six``), builds its
image, deploys an Azure-style ``score.py`` in containers of it as ``ep-old/main`` (all
traffic), then moves the base's tag to a new image labelled as patched (what `mlws image patch`
leaves, without the package download). ``down`` deletes the endpoint and removes the throwaway base tags and the images built.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from jupyter_mlws import Workspace
from jupyter_mlws.docker_engine import docker_client

REAL_BASE = "mlws/base-python:3.11-bookworm"
REPOSITORY = "mlws/base-ui-outdated"
BASE = f"{REPOSITORY}:3.11-bookworm"
PATCHED_AT = "2026-11-30T06:00:00+00:00"
ENV = "ui-outdated"
ENDPOINT = "ep-old"
SCORE = '''\
import json

def init():
    print("init done", flush=True)

def run(raw_data):
    return {"echo": json.loads(raw_data)}
'''


def up(ws: Workspace) -> None:
    client = docker_client()
    client.images.get(REAL_BASE).tag(REPOSITORY, "3.11-bookworm")
    env = ws.environments.create(ENV, image=BASE, pip_requirements=["six"])
    ws.environments.build(env)
    code = Path(tempfile.mkdtemp(prefix="mlws-ui-outdated-"))
    (code / "score.py").write_text(SCORE)
    ws.endpoints.create({"name": ENDPOINT, "compute": "docker"})  # replicas run the image
    shown = ws.endpoints.create_deployment(
        {"name": "main", "endpoint_name": ENDPOINT, "environment": env.ref,
         "code_configuration": {"code": str(code), "scoring_script": "score.py"}},
        all_traffic=True)
    dockerfile = f"FROM {BASE}\nLABEL org.mlws.patched={PATCHED_AT}\n".encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=BASE, rm=True)
    print(json.dumps({"deployment": shown["state"],
                      "outdated": [r["environment"] for r in ws.environments.outdated()]}))


def down(ws: Workspace) -> None:
    if ENDPOINT in {e["name"] for e in ws.endpoints.list()}:
        ws.endpoints.delete(ENDPOINT)
    client = docker_client()
    built = ws.environments.build_history(ws.environments.get(ENV)) \
        if ENV in ws.environments.names() else []
    for image in [h.get("image_id") for h in built] + [
            t for i in client.images.list(name=REPOSITORY) for t in i.tags]:
        if image:
            with contextlib.suppress(Exception):  # gone already
                client.images.remove(image, force=True)


if __name__ == "__main__":
    from endpoint_fixture import main  # beside this script

    main({"up": up, "down": down})
