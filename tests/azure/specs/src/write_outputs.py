"""Writes a model folder, a scores file and an export, to the paths Azure ML hands over."""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--model_dir", required=True)
parser.add_argument("--scores", required=True)
parser.add_argument("--export_dir", required=True)
args = parser.parse_args()

os.makedirs(os.path.join(args.model_dir, "weights"), exist_ok=True)
with open(os.path.join(args.model_dir, "weights", "model.txt"), "w") as f:
    f.write("w=0.5\n")
with open(args.scores, "w") as f:
    json.dump({"accuracy": 0.9}, f)
os.makedirs(args.export_dir, exist_ok=True)
with open(os.path.join(args.export_dir, "export.csv"), "w") as f:
    f.write("id,score\n1,0.9\n")
