"""Azure ML CLI v2 YAML from ``specs/``, run unedited through ``mlws job create -f``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

SPECS = Path(__file__).parent / "specs"



class _Files(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    etag = '"v1"'
    gets: list[str] = []

    def _head(self) -> bytes | None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "no such file")
            return None
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", self.etag)
        self.end_headers()
        return body

    def do_HEAD(self) -> None:  # noqa: N802 - the http.server protocol
        self._head()

    def do_GET(self) -> None:  # noqa: N802
        body = self._head()
        if body is not None:
            type(self).gets.append(self.path)
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, type[_Files]]]:
    """A file server on 127.0.0.1 (a free port): its base URL and handler (files, etag, gets)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    handler = type("Files", (_Files,), {"files": {}, "gets": [], "etag": '"v1"'})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
