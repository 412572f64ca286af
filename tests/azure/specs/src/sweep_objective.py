"""A sweep trial whose loss is fixed by its parameters: (x - 1)^2 + (y + 2)^2 (best at 1, -2).

With --steps N it logs N intermediate values (step 1..N; the last is the loss) and pauses
--pause seconds between them, so an early termination policy can stop it midway.
"""

import argparse
import time

from jupyter_mlws import run

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--y", type=float, default=-2.0)
parser.add_argument("--steps", type=int, default=1)
parser.add_argument("--pause", type=float, default=0.0)
args = parser.parse_args()

loss = (args.x - 1) ** 2 + (args.y + 2) ** 2
for step in range(1, args.steps + 1):
    run.log_metric("loss", loss, step=step)
    if step < args.steps:
        time.sleep(args.pause)
print(f"x={args.x} y={args.y} loss={loss}")
