"""The wheelhouse (:mod:`.wheelhouse`) for image builds: an image rebuilt from its lock installs
the lock's files from this machine, not from the package index.

- :meth:`ImageWheels.fill`: after a build that made or installed a lock, the host's pip
  downloads the lock's files for the *image's* interpreter and platform (read once from the image:
  ``pip download --no-deps --require-hashes --only-binary=:all: --platform ... --abi ...``); the
  lock's hashes pick exactly the files the image installed. A lock with a package that has only
  an sdist (or no hashes) is not kept: its rebuilds use the index, as before.
- :meth:`ImageWheels.serve`: while a rebuild from a lock whose every file is kept (and verifies)
  runs, a short-lived threaded HTTP server on the Docker bridge's gateway address, on a free port,
  serves a flat ``--find-links`` page of exactly those files (nothing else of the wheelhouse).
  The URL reaches the build as the build argument :data:`WHEELS_ARG`, so the Dockerfile text
  (and the image's identity) does not depend on it; pip installs with ``--no-index
  --require-hashes``. A build that cannot reach the server installs from the index (the step
  says so) and the builder logs it. The server is stopped when the build ends, failed or not.
- The bytecode of those files, compiled on this machine (:mod:`.image_pyc`), is served by the
  same server (:data:`PYC_ARG`): made by a background process after the build that kept the
  files, or while the rebuild runs.

The classic builder (docker-py) has no build mounts, and a ``COPY`` of the files would leave them
in a layer; serving them over the bridge leaves nothing in the image.
"""

from __future__ import annotations

import contextlib
import html
import ipaddress
import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import docker
import docker.errors

from jupyter_mlws.docker_engine import engine_calls, run_to_end
from jupyter_mlws.environments.builds import BuildResult
from jupyter_mlws.environments.dockerfile import PYC_ARG, UV_ARG, UV_FILE, VENV_PATH, WHEELS_ARG
from jupyter_mlws.environments.image_pyc import ImageBytecode, bundle_name
from jupyter_mlws.environments.wheelhouse import Wheelhouse, lock_hashes

__all__ = ["UV_ARG", "WHEELS_ARG", "ImageWheels", "WheelServer"]

Log = Callable[[str], None]

#: Printed by the image's Python: its interpreter, Python series, ABIs and platform tags.
_TAGS_SCRIPT = (
    "import json, sys\n"
    "try:\n    from pip._vendor.packaging import tags\n"
    "except ImportError:\n    from packaging import tags\n"
    "ts = list(tags.sys_tags())\nplatforms = []\n"
    "for t in ts:\n    platforms.append(t.platform) if t.platform not in platforms else None\n"
    "print(json.dumps({'impl': tags.interpreter_name(), 'python': '%d.%d' % sys.version_info[:2],"
    " 'abis': sorted({t.abi for t in ts}), 'platforms': platforms}))\n"
)


_KEPT = ("Kept the {} file(s) of the lock in the wheelhouse (rebuilds from the lock install them "
         "with no index)")


class WheelServer:
    """A threaded HTTP server of some files (``{file name: path}``) and their flat index page;
    ``unlisted`` files are served by name but not on the page (the installer binary), and
    ``lazy`` ones too, once the call that makes them returns their path (404 on ``None``)."""

    def __init__(self, files: dict[str, Path], shas: dict[str, str], host: str,
                 unlisted: dict[str, Path] | None = None,
                 lazy: dict[str, Callable[[], Path | None]] | None = None) -> None:
        self.files, self.requests, self.served = {**(unlisted or {}), **files}, 0, 0
        self.lazy = dict(lazy or {})
        page = "".join(f'<a href="{html.escape(n)}#sha256={shas[n]}">{html.escape(n)}</a><br>\n'
                       for n in sorted(files))
        body = f"<!DOCTYPE html><html><body>\n{page}</body></html>\n".encode()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                owner.requests += 1
                name = unquote(self.path.split("?", 1)[0].split("#", 1)[0]).lstrip("/")
                if name == "":
                    self._send(body, "text/html")
                elif name in owner.files:  # a plain name of this lock: no paths, no other files
                    owner.served += 1
                    self._send(owner.files[name].read_bytes(), "application/octet-stream")
                elif name in owner.lazy and (made := owner.lazy[name]()) is not None:
                    self._send(made.read_bytes(), "application/octet-stream")
                else:
                    self.send_error(404)

            def _send(self, data: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="mlws-wheel-server")
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def bridge_gateway(client: docker.DockerClient) -> str | None:
    """The gateway address of the engine's ``bridge`` network (where builds reach the host)."""
    with contextlib.suppress(docker.errors.DockerException, KeyError, TypeError):
        with engine_calls():
            configs = client.api.inspect_network("bridge").get("IPAM", {}).get("Config") or []
        for config in configs:
            gateway = str(config.get("Gateway") or "")
            if gateway and ":" not in gateway:  # IPv4
                return gateway
        for config in configs:  # (engines that leave it out give the bridge the subnet's
            # first address, as they do when no gateway is configured)
            with contextlib.suppress(ValueError):
                subnet = ipaddress.ip_network(str(config.get("Subnet") or ""), strict=False)
                if subnet.version == 4 and subnet.num_addresses > 2:
                    return str(subnet.network_address + 1)
    return None


class ImageWheels:
    """The wheelhouse seen from the Docker builder."""

    def __init__(self, house: Wheelhouse, client: Callable[[], docker.DockerClient]) -> None:
        self.house = house
        self._client = client
        #: Bytecode compiled here for rebuilds, kept with the wheelhouse (and cleared with it).
        self.bytecode = ImageBytecode(house.root / "pyc-image")

    @contextlib.contextmanager
    def serve(self, requirements: list[str], log: Log, installer: str | None = None,
              series: str | None = None) -> Iterator[dict[str, str]]:
        """The build arguments of a build installing the lock ``requirements``: the URL of a
        server of its kept files while the build runs, or ``{}`` (the index) when a file is
        missing, damaged or the server cannot start. ``installer``: the host's uv binary,
        served too (:data:`UV_ARG` names it) for the build to install the files with.
        ``series``: the image's Python, whose bytecode this machine compiles meanwhile when it
        can (:data:`PYC_ARG`, :mod:`.image_pyc`)."""
        kept = self.house.files_for(requirements, verify=True)
        for name in self.house.dropped:
            log(f"note: the wheelhouse copy of {name} was damaged (its sha256 changed); removed, "
                "the lock installs from the index and the file is downloaded again")
        self.house.dropped.clear()
        per_line = lock_hashes(requirements)
        gateway = bridge_gateway(self._client()) if kept is not None else None
        if kept is not None and per_line is not None and gateway is None:
            log("note: the engine's bridge network has no IPv4 gateway to serve the wheelhouse "
                "on; the lock installs from the index")
        if kept is None or per_line is None or gateway is None:
            yield {}
            return
        shas = {p.name: p.parent.name for p in kept}
        ready = self.bytecode.is_kept(kept)
        bytecode = self.bytecode.prepare(kept, series) if series else None
        lazy = {bundle_name(): bytecode} if bytecode is not None else {}
        try:
            unlisted = {UV_FILE: Path(installer)} if installer else {}
            server = WheelServer({p.name: p for p in kept}, shas, gateway, unlisted, lazy)
        except OSError as exc:
            log(f"note: could not serve the wheelhouse on {gateway} ({exc}); using the index")
            yield {}
            return
        by = " with uv" if installer else ""
        log(f"Installing the lock from the wheelhouse: {len(kept)} file(s) served to the build "
            f"at {server.url} (no index){by}")
        args = {WHEELS_ARG: server.url, **({UV_ARG: server.url + UV_FILE} if installer else {})}
        if lazy:
            log(f"Their bytecode (Python {series}, checked-hash) served too: "
                + ("compiled on this machine before" if ready else
                   "being compiled on this machine meanwhile"))
            args[PYC_ARG] = server.url + bundle_name()
        try:
            yield args
        finally:
            server.stop()
        if server.requests == 0:
            log(f"note: the build could not reach the wheelhouse server at {server.url} (a "
                "firewall between the engine's bridge and this host?); it installed from the "
                "index")

    def fill(self, image: str, lock_text: str | None, log: Log) -> None:
        """Keep the files of the lock ``lock_text`` for ``image``'s platform, unless they are
        kept already; a lock that cannot be fetched as wheels is left to the index (logged)."""
        from jupyter_mlws.environments.locks import parse_lock

        requirements = parse_lock(lock_text).requirements if lock_text else []
        if not requirements or lock_hashes(requirements) is None or \
                self.house.files_for(requirements) is not None:
            return
        tags = self.image_tags(image)
        error = self._fetch(requirements, tags) if tags is not None else \
            "could not read the image's platform tags"
        if error is not None:
            log(f"note: the wheelhouse could not keep every file of the lock ({error}); "
                "rebuilds of this image install from the index")
            return
        log(_KEPT.format(len(requirements)))
        if tags is not None:
            self.compile_for(requirements, tags)

    def filled(self, build: Callable[[Log], BuildResult], base: str, log: Log) -> BuildResult:
        """``build(log)`` (an image build from ``base``), then :meth:`fill` with its lock. The
        fetch starts as soon as the build prints its lock, while the engine still commits the
        layer, so it adds little to the build; :meth:`fill` then only checks the files."""
        early = EarlyFill(self, base, log)
        try:
            result = build(early.log)
        finally:
            early.join()
        if early.kept:
            log(_KEPT.format(early.kept))
        else:
            self.fill(result.image, result.lock, log)
        return result

    def compile_for(self, requirements: list[str], tags: dict[str, Any]) -> None:
        """Have the bytecode of the lock's kept files compiled for rebuilds of the image
        (``tags``: its interpreter) by a background process: the build does not wait for it,
        and a rebuild started meanwhile waits for it (or compiles, if it failed)."""
        kept = self.house.files_for(requirements)
        if kept:
            self.bytecode.prepare_in_background(kept, str(tags.get("python")))

    def _fetch(self, requirements: list[str], tags: dict[str, Any]) -> str | None:
        """Download the files of ``requirements`` for ``tags`` into the wheelhouse; ``None``
        when every one is kept, else why not."""
        per_line = lock_hashes(requirements) or []
        wanted = {sha for hashes in per_line for sha in hashes}
        with tempfile.TemporaryDirectory(prefix="mlws-image-wheels-") as tmp:
            lock_file = Path(tmp) / "lock.txt"
            lock_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
            dest = Path(tmp) / "files"
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
                   "--only-binary=:all:", "--disable-pip-version-check", "--no-input",
                   "--python-version", tags["python"], "--implementation", tags["impl"],
                   *[a for abi in tags["abis"] for a in ("--abi", abi)],
                   *[a for p in tags["platforms"] if p != "any" for a in ("--platform", p)],
                   "-d", str(dest), "-r", str(lock_file)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if dest.is_dir():
                self.house.add_folder(dest, wanted)
        if done.returncode == 0 and self.house.files_for(requirements) is not None:
            return None
        return (done.stderr.strip().splitlines() or ["not every file is a wheel"])[-1]

    def image_tags(self, image: str, python: str = f"{VENV_PATH}/bin/python"
                   ) -> dict[str, Any] | None:
        """The interpreter, Python series, ABIs and platform tags of ``python`` in ``image``."""
        try:
            code, out = run_to_end(self._client(), image, ["-c", _TAGS_SCRIPT],
                                   entrypoint=[python], network_disabled=True)
            tags = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
        except (docker.errors.DockerException, ValueError, IndexError):
            return None
        if code != 0 or not isinstance(tags, dict) or not tags.get("platforms"):
            return None
        return tags


class EarlyFill:
    """See :meth:`ImageWheels.early`: ``log`` forwards every line and watches for the lock."""

    def __init__(self, wheels: ImageWheels, base: str, log: Log) -> None:
        self._wheels, self._base, self._log = wheels, base, log
        self._lines: list[str] | None = None
        self._thread: threading.Thread | None = None
        #: How many files of the lock the early fetch kept (0: none, or it did not run).
        self.kept = 0

    def log(self, line: str) -> None:
        from jupyter_mlws.environments.locks import LOCK_BEGIN, LOCK_END, one_line_requirements

        self._log(line)
        text = line.strip()
        if text == LOCK_BEGIN and self._thread is None:
            self._lines = []
        elif text == LOCK_END and self._lines is not None and self._thread is None:
            requirements, self._lines = one_line_requirements(self._lines), None
            self._thread = threading.Thread(target=self._run, args=(requirements,), daemon=True,
                                            name="mlws-wheel-fill")
            self._thread.start()
        elif self._lines is not None:
            self._lines.append(text)

    def _run(self, requirements: list[str]) -> None:
        house = self._wheels.house
        if not requirements or lock_hashes(requirements) is None or \
                house.files_for(requirements) is not None:
            return
        # the venv is made from the base's python3: the same interpreter and platform tags
        tags = self._wheels.image_tags(self._base, "python3")
        if tags is not None:
            with contextlib.suppress(OSError):
                if self._wheels._fetch(requirements, tags) is None:
                    self.kept = len(requirements)
                    self._wheels.compile_for(requirements, tags)

    def join(self) -> None:
        """Wait for the fetch started by the build (if any)."""
        if self._thread is not None:
            self._thread.join()
