"""nbformat's v4 JSON schemas compiled into validators, with the compiled code kept on disk.

fastjsonschema turns a schema into Python source and compiles it: about a tenth of a second
per schema, paid again by every ``mlws job notebook`` process. The code object it compiles to
is the same every time for one schema, fastjsonschema and Python, so it is kept (``marshal``,
as Python keeps ``.pyc`` files) in the machine's cache folder under a name made of their
digest, and loaded from there when it is the user's own private file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FOLDER = "nbformat-validators"
_VALIDATORS: dict[int, Any] = {}


def v4_validator(major: Any, minor: Any, cache_dir: Path | None = None) -> Any:
    """The validator of nbformat's v4.``minor`` schema (compiled once per process, kept in
    ``cache_dir`` across processes), or ``None`` (another version, no nbformat)."""
    if major != 4 or type(minor) is not int or not 0 <= minor <= 5:
        return None
    if minor not in _VALIDATORS:
        import importlib.util

        spec = importlib.util.find_spec("nbformat")
        if spec is None or spec.origin is None:
            return None
        schema = Path(spec.origin).parent / "v4" / f"nbformat.v4.{minor}.schema.json"
        try:
            _VALIDATORS[minor] = _compiled(schema.read_bytes(), cache_dir)
        except (ImportError, OSError, ValueError):
            return None
    return _VALIDATORS[minor]


def _compiled(schema: bytes, cache_dir: Path | None) -> Any:
    import fastjsonschema

    code = None
    path = None
    if cache_dir is not None:
        import hashlib
        import importlib.util

        key = hashlib.sha256(schema + fastjsonschema.VERSION.encode()
                             + importlib.util.MAGIC_NUMBER).hexdigest()[:40]
        path = cache_dir / FOLDER / f"{key}.marshal"
        code = _load(path)
    if code is None:
        source = fastjsonschema.compile_to_code(json.loads(schema))
        code = compile(source, "<nbformat v4 schema>", "exec")
        if path is not None:
            _keep(path, code)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - fastjsonschema's own code for nbformat's schema
    validate = namespace.get("validate")
    if not callable(validate):
        return fastjsonschema.compile(json.loads(schema))
    return validate


def _load(path: Path) -> Any:
    """The code object kept at ``path``: only from a regular file of this user that nobody
    else can write (it is run)."""
    import marshal
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid()
                or st.st_mode & 0o022):
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            code = marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    finally:
        os.close(fd)
    return code if type(code) is type(_load.__code__) else None


def _keep(path: Path, code: Any) -> None:
    """Write the code object to ``path`` (a private file, replaced whole; a cache: not
    fsynced, a broken one is compiled again)."""
    import marshal

    from jupyter_mlws.fileio import write_bytes_atomic

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_bytes_atomic(path, marshal.dumps(code), mode=0o600, durable=False)
    except OSError:
        pass
