"""A cap on how much address space the test process may add while a hostile input is handled."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def address_space_capped(extra_bytes: int = 2 * 1024**3) -> Iterator[None]:
    """Let this process grow by at most ``extra_bytes`` of address space meanwhile: a runaway
    expansion (e.g. a YAML alias bomb on unfixed code) then ends in MemoryError instead of
    exhausting a shared machine."""
    status = Path("/proc/self/status").read_text()
    vm_size = int(next(ln for ln in status.splitlines() if ln.startswith("VmSize:")).split()[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm_size * 1024 + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
