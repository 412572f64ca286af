"""A sweep trial in a pipeline: its loss is (x - target)^2, the target read from the data the
previous step prepared; it keeps x in its model output."""

import argparse
from pathlib import Path

from jupyter_mlws import run

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--x", type=float)
parser.add_argument("--model")
args = parser.parse_args()
target = float((Path(args.data) / "target.txt").read_text())
run.log_metric("loss", (args.x - target) ** 2)
(Path(args.model) / "x.txt").write_text(str(args.x))
