"""Reads the model a previous step wrote."""
import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--model_input")
parser.add_argument("--score_output")
args = parser.parse_args()
text = (Path(args.model_input) / "model.txt").read_text()
(Path(args.score_output) / "score.txt").write_text(f"scored: {text}")
