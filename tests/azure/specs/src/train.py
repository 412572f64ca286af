"""A training script in the shape Azure ML examples use: argparse, ./outputs, ./logs."""
import argparse
import json
import os
from pathlib import Path

parser = argparse.ArgumentParser()
for name in ("--iris", "--data-dir", "--registered", "--name", "--model", "--metrics", "--report"):
    parser.add_argument(name)
parser.add_argument("--epochs", type=int)
parser.add_argument("--lr", type=float)
parser.add_argument("--shuffle")
parser.add_argument("--seed", type=int, default=None)
args = parser.parse_args()

rows = Path(args.iris).read_text().splitlines()
files = sorted(p.name for p in Path(args.data_dir).iterdir())
registered = Path(args.registered).read_text().splitlines()
assert Path(args.model).is_dir(), "a uri_folder output is a folder"
assert not Path(args.metrics).exists() and Path(args.metrics).parent.is_dir(), \
    "a uri_file output is a file path"
assert Path(args.report).is_dir(), "an empty output declaration is a uri_folder"
(Path(args.model) / "model.txt").write_text(f"{args.name} epochs={args.epochs} lr={args.lr}")
Path(args.metrics).write_text(json.dumps({"rows": len(rows), "files": files,
                                          "registered": len(registered),
                                          "shuffle": args.shuffle, "seed": args.seed}))
(Path(args.report) / "report.md").write_text("# report\n")
os.makedirs("outputs", exist_ok=True)  # Azure ML examples do this; it must be harmless
Path("outputs/extra.txt").write_text("kept as an artifact")
Path("logs/train.log").write_text("epoch 1 done\n")
print("trained", args.name)
