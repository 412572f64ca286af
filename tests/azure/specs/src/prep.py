"""Copies the csv files of a folder, counting their rows."""
import argparse
import shutil
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--raw_data")
parser.add_argument("--prepped")
args = parser.parse_args()
count = 0
for f in sorted(Path(args.raw_data).glob("*.csv")):
    shutil.copy(f, Path(args.prepped) / f.name)
    count += len(f.read_text().splitlines()) - 1
print("prepared rows:", count)
