"""Set up (``up``) or remove (``down``) the other user's job that the "Mine" browser test hides.

``up``, in the workspace of $MLWS_WORKSPACE (the one the test server serves): submits a command
job as ``someone-else`` ($MLWS_USER, as that person's CLI on another machine would record), waits
for it and prints its id and creator as JSON. ``down`` has nothing to remove (a finished job is
history) and only checks the job is there.
"""

from __future__ import annotations

import json
import os
import sys

from jupyter_mlws import Workspace

OTHER = "someone-else"


def main(action: str) -> None:
    ws = Workspace.open(os.environ["MLWS_WORKSPACE"])
    try:
        if action == "up":
            os.environ["MLWS_USER"] = OTHER
            job = ws.jobs.submit_command("echo from someone else", display_name="not-mine")
            done = ws.jobs.wait(job.id, timeout=120)
            print(json.dumps({"id": done.id, "created_by": done.created_by,
                              "status": done.status}))
        else:
            print(json.dumps({"others": len(ws.jobs.list(created_by=OTHER, limit=None))}))
    finally:
        ws.close()


if __name__ == "__main__":
    main(sys.argv[1])
