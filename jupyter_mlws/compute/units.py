"""Units that compute settings are written in."""

from __future__ import annotations

import re

from jupyter_mlws.errors import ValidationError

_MEMORY = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT]?)[iI]?[bB]?")
_SCALE = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_memory(text: str) -> int:
    """``512m``, ``4g``, ``1.5GiB``, ``1048576`` -> bytes (binary multiples)."""
    m = _MEMORY.fullmatch(str(text).strip())
    if not m:
        raise ValidationError(f"Cannot read the memory limit {text!r}.",
                              hint="Use e.g. 512m or 4g.")
    return int(float(m.group(1)) * _SCALE[m.group(2).lower()])
