"""Azure ML CLI v2 YAML from ``specs/``, run unedited through ``mlws job create -f``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from tests.helpers import stop_jobs

SPECS = Path(__file__).parent / "specs"


@pytest.fixture
def aws(ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace the CLI finds (``MLWS_WORKSPACE``); its jobs are stopped afterwards."""
    monkeypatch.setenv("MLWS_WORKSPACE", str(ws.path))
    monkeypatch.chdir(tmp_path)
    yield ws
    stop_jobs(ws)


@pytest.fixture
def mlws(aws: Workspace) -> Callable[..., Result]:
    """``mlws ARGS...`` as typed; asserts the exit code (0 unless ``code`` is given)."""
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Result:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


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
