import argparse

import six

parser = argparse.ArgumentParser()
parser.add_argument("--who", default="world")
args = parser.parse_args()
print(f"hello {args.who} (six {six.__version__})")
