"""A job's log as one text addressed by byte offset (the preparation log, then the job's own),
so clients can follow it by asking again from where they stopped."""

from __future__ import annotations

from pathlib import Path

#: The most bytes one read returns; a follower asks again from the returned offset.
LOG_CHUNK_BYTES = 1 << 20


def read_log_chunk(parts: list[Path], offset: int, limit: int = LOG_CHUNK_BYTES
                   ) -> tuple[bytes, int, int]:
    """Bytes of the files in ``parts`` read as one text, from ``offset``; returns (bytes, new
    offset, total size)."""
    sizes = [_size(p) for p in parts]
    total = sum(sizes)
    out = bytearray()
    start = 0
    for path, size in zip(parts, sizes):
        end = start + size
        if size and offset < end and len(out) < limit:  # a part not written yet has size 0
            try:
                with open(path, "rb") as f:
                    f.seek(max(0, offset - start))
                    out += f.read(min(size - max(0, offset - start), limit - len(out)))
            except FileNotFoundError:
                pass
        start = end
    return bytes(out), min(offset, total) + len(out), total


def decode_complete(data: bytes, final: bool) -> tuple[str, int]:
    """UTF-8 text of ``data`` without a character cut at its end (unless ``final``); returns the
    text and how many bytes it used."""
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as exc:
        if not final and exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8", errors="replace"), exc.start
        return data.decode("utf-8", errors="replace"), len(data)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
