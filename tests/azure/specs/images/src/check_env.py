"""Prints the interpreter and the versions of modules; fails when they are not what is expected."""

import argparse
import importlib
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--expect-python")
parser.add_argument("--module", action="append", default=[])
parser.add_argument("--file")
args = parser.parse_args()

version = f"{sys.version_info[0]}.{sys.version_info[1]}"
print(f"python {version} at {sys.executable}")
if args.expect_python and version != args.expect_python:
    sys.exit(f"expected Python {args.expect_python}, got {version}")
for item in args.module:
    name, _, want = item.partition("=")
    have = importlib.import_module(name).__version__
    print(f"{name} {have}")
    if want and have != want:
        sys.exit(f"expected {name} {want}, got {have}")
if args.file:
    with open(args.file) as handle:
        print(handle.read().strip())
print("environment ok")
