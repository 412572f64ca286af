"""Tests against a real two-node Ray cluster started by scripts/ray-cluster.sh."""
