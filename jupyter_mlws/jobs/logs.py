"""A job's log as one text addressed by byte offset (the preparation log, then the job's own),
so clients can follow it by asking again from where they stopped.

The log files live in the job's folder, so they are read as untrusted: a part that is a symlink
(below ``root``, the job's folder) or not a regular file is never followed.
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_mlws.errors import UnsafePathError
from jupyter_mlws.jobs.safe_files import job_file_size, open_job_file

#: The most bytes one read returns; a follower asks again from the returned offset.
LOG_CHUNK_BYTES = 1 << 20


def read_log_chunk(parts: list[Path], offset: int, limit: int = LOG_CHUNK_BYTES, *,
                   root: Path | None = None) -> tuple[bytes, int, int]:
    """Bytes of the files in ``parts`` read as one text, from ``offset``; returns (bytes, new
    offset, total size). A part that is a link or a special file reads as empty."""
    sizes = [job_file_size(p, root) for p in parts]
    total = sum(sizes)
    out = bytearray()
    start = 0
    for path, size in zip(parts, sizes):
        end = start + size
        if size and offset < end and len(out) < limit:  # a part not written yet has size 0
            try:
                with open_job_file(path, root) as f:
                    f.seek(max(0, offset - start))
                    out += f.read(min(size - max(0, offset - start), limit - len(out)))
            except (FileNotFoundError, UnsafePathError):
                pass
        start = end
    return bytes(out), min(offset, total) + len(out), total


def read_log_text(parts: list[Path], root: Path) -> str:
    """The files in ``parts`` as one text; a part the job replaced by a link or a special file
    is not read, and a note says so in its place."""
    out = []
    for path in parts:
        try:
            with open_job_file(path, root) as f:
                out.append(f.read().decode("utf-8", errors="replace"))
        except FileNotFoundError:
            continue
        except UnsafePathError:
            out.append(f"[mlws] {path.name} is not shown: it is not a regular file (the job left "
                       "a link or a special file in its place)\n")
    return "".join(out)


def log_size(parts: list[Path], root: Path) -> int:
    """The size of the log made of ``parts``, as :func:`read_log_chunk` counts it."""
    return sum(job_file_size(p, root) for p in parts)


def decode_complete(data: bytes, final: bool) -> tuple[str, int]:
    """UTF-8 text of ``data`` without a character cut at its end (unless ``final``); returns the
    text and how many bytes it used."""
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as exc:
        if not final and exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8", errors="replace"), exc.start
        return data.decode("utf-8", errors="replace"), len(data)


#: How many bytes :func:`read_log_tail` reads at a time, going back from the end.
TAIL_BLOCK_BYTES = 64 * 1024


def _part_tail(path: Path, root: Path, newlines: int, block: int) -> tuple[str, bool]:
    """The end of one part holding at least ``newlines`` newlines (or all of it), decoded, and
    whether that was enough (the text then starts just after a newline, a line boundary)."""
    try:
        with open_job_file(path, root) as f:
            fd = f.fileno()
            pos = os.fstat(fd).st_size
            blocks: list[bytes] = []
            found = 0
            while pos > 0 and found < newlines:
                size = min(block, pos)
                pos -= size
                data = os.pread(fd, size, pos)
                blocks.append(data)
                found += data.count(b"\n")
    except FileNotFoundError:
        return "", False
    except UnsafePathError:
        return (f"[mlws] {path.name} is not shown: it is not a regular file (the job left a "
                "link or a special file in its place)\n"), False
    data = b"".join(reversed(blocks))
    enough = found >= newlines
    if enough and pos > 0:
        data = data[data.index(b"\n") + 1:]
    return data.decode("utf-8", errors="replace"), enough


def read_log_tail(parts: list[Path], root: Path, lines: int, *,
                  block: int = TAIL_BLOCK_BYTES) -> str:
    """The last ``lines`` lines of the log made of ``parts`` (as ``splitlines`` counts them),
    read back from the end in blocks instead of whole; parts are read as :func:`read_log_text`
    reads them."""
    if lines <= 0:  # the whole log, as slicing with [-0:] always gave
        return "\n".join(read_log_text(parts, root).splitlines()[-lines:])
    pieces: list[str] = []
    want = lines + 1  # one more newline than lines: the first line kept is then whole
    for path in reversed(parts):
        text, enough = _part_tail(path, root, want, block)
        pieces.append(text)
        if enough:
            break
        want -= text.count("\n")
    return "\n".join("".join(reversed(pieces)).splitlines()[-lines:])
