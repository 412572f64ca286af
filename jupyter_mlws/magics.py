"""IPython magics (``%load_ext jupyter_mlws``): %%environment, %submit, %register and %mlws.

A surface: each magic parses its line, calls the Workspace facade (opened once per kernel, on
first use) and shows the result. An error prints one line (the workspace's message with its fix,
or the usage problem) and fails the cell without a traceback.
"""

from __future__ import annotations

import argparse
import functools
import html
import json
import os
import shlex
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display

from jupyter_mlws.cli._format import age, detail_lines, html_table, text_table
from jupyter_mlws.errors import AssetNotFoundError, DockerUnavailableError, MagicError, MlwsError
from jupyter_mlws.jobs.requests import (
    NotebookJobRequest,
    parse_assignments,
    parse_literal,
    parse_pairs,
)

ENV_JOB_ID = "MLWS_JOB_ID"
ENV_SESSION = "JPY_SESSION_NAME"

KIND_ALIASES = {
    "model": "model", "models": "model", "data": "data",
    "environment": "environment", "environments": "environment", "env": "environment",
    "envs": "environment", "job": "job", "jobs": "job", "component": "component",
    "components": "component", "compute": "compute", "computes": "compute",
    "datastore": "datastore", "datastores": "datastore",
}

HELP = """\
jupyter_mlws magics
  %%environment NAME [--image BASE] [--format conda|pip|docker] [--build] [--builder docker|venv]
      register the cell's conda YAML / requirements / Dockerfile (the identical version is reused)
  %submit [NOTEBOOK] [-e ENV] [-c COMPUTE] [-p NAME VALUE]... [--input NAME=REF]... [--out NAME]...
          [--wait]
      run a notebook as a job (without NOTEBOOK: the saved notebook this cell is in);
      VALUE is a Python literal (0.1, "[64, 32]", True) or else a string
  %register model|data NAME PATH [--type T] [--version V] [--tag k=v]... [--description TEXT]
      PATH is a local file or folder, or a job output mlws://jobs/<id>/outputs/<name>
  %deploy MODEL[:VER] --endpoint E [--deployment D] [--scoring-script F [--code DIR]]
          [--environment ENV] [--instance-count N]
      deploy to an online endpoint (created when missing); returns a live endpoint widget
  %mlws list models|data|environments|components|computes|datastores|jobs|endpoints
  %mlws show KIND NAME[:VERSION]        (for a job: %mlws show job JOB_ID)
  %mlws monitor JOB_ID                  a live monitor of a job
  %mlws browse [KIND]                   browse assets and their lineage
  %mlws workspace [PATH]                show the workspace, or switch to the one at PATH
  %sweep [NOTEBOOK] --search NAME=EXPR... --metric M [--goal maximize|minimize] [--max-trials N]
         [--max-concurrent N] [--sampling random|grid|bayesian] [--early-termination ...] [--wait]
      run a notebook over a search space (trial jobs; the monitor shows them live)
  %mlws help"""


class _HelpShown(Exception):
    """``--help`` was printed: the magic ends quietly."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad line as a :class:`MagicError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split())
        raise MagicError(f"{self.prog}: {message} ({usage})")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr)
        raise _HelpShown


def _parse(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise MagicError(f"{parser.prog}: {exc} in {line!r}") from None
    return parser.parse_args(argv)


#: A parameter value as every surface reads it (see :func:`jupyter_mlws.jobs.requests.parse_literal`).
literal = parse_literal


def _pairs(items: Sequence[str] | None, what: str) -> dict[str, str]:
    """``NAME=VALUE`` items kept as text, e.g. tags (``what`` names the magic and option)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise MagicError(f"{what} {item!r} must look like NAME=VALUE.")
        out[key] = value
    return out


def one_line(exc: MlwsError) -> str:
    """The error's message and fix on one line (a build's log tail was already shown)."""
    text = MlwsError.__str__(exc)
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _HelpShown:
            return None
        except MlwsError as exc:
            raise MagicError(one_line(exc)) from None

    return wrapper  # type: ignore[return-value]


def _show(text: str, html_text: str | None = None) -> None:
    if html_text is None:
        print(text)
    else:
        display({"text/plain": text, "text/html": html_text}, raw=True)


def _show_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> None:
    if not rows:
        print(empty)
        return
    _show(text_table(headers, rows), html_table(headers, rows))


class LiveLog:
    """Lines shown in the cell as they come: a display updated in place, at most every
    ``interval`` seconds (a timer shows a line that arrives sooner, so none waits for the next),
    and once more with the summary; plain prints outside a kernel."""

    def __init__(self, title: str, *, tail: int = 40, interval: float = 0.2,
                 in_kernel: bool = True) -> None:
        self.title = title
        self.lines: deque[str] = deque(maxlen=tail)
        self.count = 0
        self.updates = 0
        self.summary = ""
        self.interval = interval
        self._last = 0.0
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._handle = display(self._bundle(), raw=True, display_id=True) if in_kernel else None

    def add(self, line: str) -> None:
        with self._lock:
            for part in line.rstrip("\n").split("\n"):
                self.lines.append(part)
                self.count += 1
                if self._handle is None:
                    print(part, flush=True)
            if self._handle is None:
                return
            wait = self.interval - (time.monotonic() - self._last)
            if wait <= 0:
                self._update()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._on_timer)
                self._timer.daemon = True
                self._timer.start()

    def finish(self, summary: str) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.summary = summary
            if self._handle is None:
                print(summary)
            else:
                self._update()

    def _on_timer(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer = None
                self._update()

    def _update(self) -> None:
        assert self._handle is not None
        self._last = time.monotonic()
        self.updates += 1
        self._handle.update(self._bundle(), raw=True)

    def _bundle(self) -> dict[str, str]:
        skipped = self.count - len(self.lines)
        body = (f"… {skipped} earlier lines\n" if skipped > 0 else "") + "\n".join(self.lines)
        text = "\n".join(x for x in (self.title, body, self.summary) if x)
        pre = ("margin:0;padding:4px 6px;max-height:360px;overflow:auto;background:#f7f7f7;"
               "font-size:11px;white-space:pre-wrap")
        markup = (f"<div><b>{html.escape(self.title)}</b> <span style='color:#666'>"
                  f"({self.count} lines)</span></div><pre style='{pre}'>{html.escape(body)}</pre>"
                  + (f"<div>{html.escape(self.summary)}</div>" if self.summary else ""))
        return {"text/plain": text, "text/html": markup}


def _normalized(source: Any) -> str:
    text = "".join(source) if isinstance(source, list) else str(source or "")
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").strip().split("\n"))


def saved_notebook_has_cell(path: Path, code: str) -> bool:
    """Whether the notebook saved at ``path`` has a code cell whose source is ``code``."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MagicError(f"%submit: cannot read {str(path)!r} as a notebook ({exc}). "
                         "Pass it: %submit NOTEBOOK.") from None
    wanted = _normalized(code)
    return any(cell.get("cell_type") == "code" and _normalized(cell.get("source")) == wanted
               for cell in nb.get("cells", []) if isinstance(cell, dict))


def resolve_session_path(value: str, cwd: Path) -> Path | None:
    """The file a kernel's session name points at.

    Jupyter Server gives the absolute path when it knows the notebook's name, else the path
    relative to its root folder, which is the kernel's folder or one of its parents.
    """
    p = Path(value).expanduser()
    if p.is_absolute():
        return p if p.is_file() else None
    for base in (cwd, *cwd.parents):
        if (base / p).is_file():
            return (base / p).resolve()
    return None


@magics_class
class MlwsMagics(Magics):
    """The jupyter_mlws magics; the workspace opens on first use (``%mlws workspace PATH``
    switches)."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._ws: Any = None
        self.last_job_id: str | None = None
        self._env_parser = self._make_environment_parser()
        self._submit_parser = self._make_submit_parser()
        self._register_parser = self._make_register_parser()
        self._mlws_parser = self._make_mlws_parser()

    @property
    def ws(self) -> Any:
        if self._ws is None:
            from jupyter_mlws.workspace import Workspace

            self._ws = Workspace.open()
        return self._ws

    # --- parsers ---------------------------------------------------------------------------

    @staticmethod
    def _make_environment_parser() -> _Parser:
        p = _Parser(prog="%%environment", add_help=True,
                    description="Register the cell body as an environment.")
        p.add_argument("name")
        p.add_argument("--image", help="base image (conda / pip bodies)")
        p.add_argument("--format", choices=["conda", "pip", "docker"],
                       help="what the body is (detected when omitted)")
        p.add_argument("--build", action="store_true", help="build it now, showing the log")
        p.add_argument("--builder", choices=["docker", "venv"], default="docker")
        return p

    @staticmethod
    def _make_submit_parser() -> _Parser:
        p = _Parser(prog="%submit", description="Run a notebook as a job.")
        p.add_argument("notebook", nargs="?",
                       help="the notebook (default: the saved notebook this cell is in)")
        p.add_argument("-e", "--environment")
        p.add_argument("-c", "--compute")
        p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                       help="a parameter; VALUE is a Python literal or else a string")
        p.add_argument("-i", "--input", action="append", metavar="NAME=REF")
        p.add_argument("-o", "--out", action="append", metavar="NAME")
        p.add_argument("--wait", action="store_true", help="block until the job ends")
        return p

    @staticmethod
    def _make_register_parser() -> _Parser:
        p = _Parser(prog="%register", description="Register a model or data.")
        p.add_argument("kind", choices=["model", "data"])
        p.add_argument("name")
        p.add_argument("path", help="a local path or mlws://jobs/<id>/outputs/<name>")
        p.add_argument("--type")
        p.add_argument("--version")
        p.add_argument("--tag", action="append", metavar="KEY=VALUE")
        p.add_argument("--description")
        return p

    @staticmethod
    def _make_mlws_parser() -> _Parser:
        p = _Parser(prog="%mlws", description="Look at the workspace.")
        sub = p.add_subparsers(dest="command", required=True)
        sub.add_parser("help")
        ls = sub.add_parser("list")
        ls.add_argument("kind")
        show = sub.add_parser("show")
        show.add_argument("kind")
        show.add_argument("ref", metavar="NAME[:VERSION]")
        mon = sub.add_parser("monitor")
        mon.add_argument("job_id")
        browse = sub.add_parser("browse")
        browse.add_argument("kind", nargs="?", default="model")
        wsp = sub.add_parser("workspace")
        wsp.add_argument("path", nargs="?")
        return p

    # --- %%environment ---------------------------------------------------------------------

    @cell_magic
    def environment(self, line: str, cell: str) -> None:
        """Register the cell's conda YAML, requirements or Dockerfile; ``--build`` builds it."""
        self._environment(line, cell)

    @_one_line_errors
    def _environment(self, line: str, cell: str) -> None:
        args = _parse(self._env_parser, line)
        if not cell.strip():
            raise MagicError("%%environment: the cell has no body; write a conda YAML, a "
                             "requirements list or a Dockerfile below the magic line.")
        ops = self.ws.environments
        try:
            before = ops.get(args.name)
        except AssetNotFoundError:
            before = None
        env = ops.create_from_text(args.name, cell, fmt=args.format, image=args.image)
        reused = before is not None and before.version == env.version
        state = {b: self._cached(env, b) for b in ("venv", "docker")}
        how = "identical to the latest: reused" if reused else "registered"
        rows = [("environment", f"{env.ref} ({how})"),
                ("hash", f"{env.env_hash[:12]}  (image {env.image})"),
                ("venv", state["venv"]), ("docker image", state["docker"])]
        _show("\n".join(f"{k}: {v}" for k, v in rows),
              "".join(f"<div><b>{html.escape(k)}</b>: {html.escape(v)}</div>" for k, v in rows))
        if args.build:
            self._build(env, args.builder)

    def _cached(self, env: Any, builder: str) -> str:
        try:
            found = self.ws.environments.lookup(env, builder)
        except DockerUnavailableError:
            return "unknown (the Docker engine cannot be reached)"
        except MlwsError as exc:
            return f"unknown ({exc.message})"
        return "cached" if found is not None else "not built yet"

    def _build(self, env: Any, builder: str) -> None:
        live = LiveLog(f"Building {env.ref} ({builder})",
                       in_kernel=getattr(self.shell, "kernel", None) is not None)
        t0 = time.monotonic()
        try:
            result = self.ws.environments.build(env, builder=builder, log=live.add)
        except MlwsError as exc:
            live.finish(f"Build failed after {time.monotonic() - t0:.1f} s.")
            raise MagicError(one_line(exc)) from None
        how = "reused the cached" if result.cached else f"built in {time.monotonic() - t0:.1f} s:"
        live.finish(f"{env.ref}: {how} {'image' if builder == 'docker' else 'venv'} "
                    f"{result.image}")

    # --- %submit ---------------------------------------------------------------------------

    @line_magic
    def submit(self, line: str) -> None:
        """Run a notebook as a job and show a live monitor (``--wait`` blocks until it ends)."""
        self._submit(line)

    @_one_line_errors
    def _submit(self, line: str) -> None:
        args = _parse(self._submit_parser, line)
        params = parse_pairs(args.param)
        inputs = parse_assignments(args.input, "%submit: --input")
        outputs: dict[str, dict[str, Any]] = {name: {} for name in args.out or []}
        notebook = self.target_notebook(args.notebook, "%submit",
                                        "a notebook job does not submit itself again")
        if notebook is None:
            return
        job = self.ws.jobs.submit(NotebookJobRequest.create(
            notebook=notebook, parameters=params, environment=args.environment,
            compute=args.compute, inputs=inputs, outputs=outputs))
        self.last_job_id = job.id
        job = self.monitor(job.id, "job", wait=args.wait)
        if job is None:
            return
        if job.status != "Completed":
            reason = (job.error or "").strip().splitlines()
            raise MagicError(f"Job {job.id} {job.status}"
                             + (f": {reason[0]}" if reason else "")
                             + f". Its log: %mlws show job {job.id}")
        latest = {m.key: m.value for m in self.ws.jobs.metrics(job.id)}
        took = f" in {job.duration_s:.1f} s" if job.duration_s is not None else ""
        shown = ", ".join(f"{k}={v:.4g}" for k, v in latest.items())
        print(f"Job {job.id} Completed{took}" + (f": {shown}" if shown else ""))

    def target_notebook(self, given: str | None, magic: str, why_skipped: str) -> str | None:
        """The notebook a magic runs: the one given, else the saved notebook of this cell;
        ``None`` (and says so) when the cell itself runs inside a job."""
        if given is not None:
            return given
        inside = os.environ.get(ENV_JOB_ID)
        if inside:
            print(f"{magic}: skipped inside job {inside} ({why_skipped}).")
            return None
        return str(self._this_notebook())

    def monitor(self, job_id: str, noun: str, *, wait: bool) -> Any:
        """Show a live monitor of ``job_id``; with ``wait``, block until it ends and return
        the ended job (``None`` when not waiting or the user stopped waiting)."""
        from jupyter_mlws.widgets.job_monitor import JobMonitor

        monitor = JobMonitor(self.ws, job_id)
        handle = display(monitor, display_id=True)
        if not wait:
            return None
        try:
            monitor.wait()
        except KeyboardInterrupt:
            print(f"Stopped waiting; {noun} {job_id} goes on (the monitor above follows it).")
            return None
        if handle is not None:
            handle.update(monitor)  # the text fallback now says how it ended
        return self.ws.jobs.get(job_id)

    def _this_notebook(self) -> Path:
        """The saved notebook this cell is in, checked to hold this very cell."""
        shell: Any = self.shell
        names = [v for v in (shell.user_ns.get("__session__"), os.environ.get(ENV_SESSION))
                 if isinstance(v, str) and v]
        if not names:
            raise MagicError(
                "%submit: cannot tell which notebook this cell is in (the kernel was not started "
                "by JupyterLab, so it has no JPY_SESSION_NAME). Pass it: %submit NOTEBOOK.")
        path = next((p for p in (resolve_session_path(n, Path.cwd()) for n in names) if p), None)
        if path is None:
            raise MagicError(
                f"%submit: this kernel's notebook {names[0]!r} is not a file here (renamed, "
                "moved or never saved?). Pass it: %submit NOTEBOOK.")
        code = self._cell_code()
        if code is not None and not saved_notebook_has_cell(path, code):
            raise MagicError(
                f"%submit: the saved {path.name} does not contain this cell as it is now "
                "(unsaved changes): save the notebook (Ctrl+S) and run the cell again.")
        return path

    def _cell_code(self) -> str | None:
        """The source of the cell being run, as the frontend sent it."""
        kernel = getattr(self.shell, "kernel", None)
        if kernel is not None:
            try:
                code = kernel.get_parent("shell").get("content", {}).get("code")
            except Exception:
                code = None
            if isinstance(code, str):
                return code
        shell: Any = self.shell
        raw = getattr(shell.history_manager, "input_hist_raw", None)
        return raw[-1] if raw else None

    # --- %register -------------------------------------------------------------------------

    @line_magic
    def register(self, line: str) -> None:
        """Register a model or data from a local path or a job output."""
        self._register(line)

    @_one_line_errors
    def _register(self, line: str) -> None:
        args = _parse(self._register_parser, line)
        ops = self.ws.models if args.kind == "model" else self.ws.data
        extra = {"type": args.type} if args.type else {}
        asset = ops.create(args.name, args.path, version=args.version,
                           tags=_pairs(args.tag, "%register: --tag") or None,
                           description=args.description, **extra)
        source = f" from job {asset.job_id}" if asset.job_id else ""
        print(f"Registered {args.kind} {asset.ref}{source} "
              f"(type {asset.spec.get('type')}).")

    # --- %mlws -----------------------------------------------------------------------------

    @line_magic
    def mlws(self, line: str) -> None:
        """%mlws list|show|monitor|browse|workspace|help: see ``%mlws help``."""
        self._mlws(line)

    @_one_line_errors
    def _mlws(self, line: str) -> None:
        if not line.strip():
            print(HELP)
            return
        args = _parse(self._mlws_parser, line)
        if args.command == "help":
            print(HELP)
        elif args.command == "list" and args.kind.lower() in ("endpoint", "endpoints"):
            from jupyter_mlws.deploy_magics import show_endpoints

            show_endpoints(self.ws)
        elif args.command == "list":
            self._list(self._kind(args.kind))
        elif args.command == "show":
            self._show_one(self._kind(args.kind), args.ref)
        elif args.command == "monitor":
            from jupyter_mlws.widgets.job_monitor import JobMonitor

            display(JobMonitor(self.ws, self.ws.jobs.get(args.job_id).id))
        elif args.command == "browse":
            from jupyter_mlws.widgets.asset_browser import KINDS, AssetBrowser

            kind = self._kind(args.kind)
            if kind not in {k for _label, k in KINDS}:
                raise MagicError(f"%mlws browse: {args.kind} cannot be browsed; use models, "
                                 "data, environments, components or jobs.")
            display(AssetBrowser(self.ws, kind))
        elif args.command == "workspace":
            if args.path:
                from jupyter_mlws.workspace import Workspace

                new = Workspace.open(args.path)
                if self._ws is not None:
                    self._ws.close()
                self._ws = new
            info = self.ws.info()
            print(f"Workspace {info['path']}: "
                  + ", ".join(f"{n} {k}s" for k, n in info["counts"].items()))

    @staticmethod
    def _kind(text: str) -> str:
        kind = KIND_ALIASES.get(text.lower())
        if kind is None:
            raise MagicError(f"%mlws: unknown kind {text!r}; use one of: models, data, "
                             "environments, components, computes, datastores, jobs.")
        return kind

    def _list(self, kind: str) -> None:
        if kind == "job":
            jobs = self.ws.jobs.list(limit=50)
            _show_table(
                ["id", "name", "status", "created", "duration", "compute", "environment"],
                [(j.id, j.display_name or j.type, j.status, age(j.created_at),
                  "" if j.duration_s is None else f"{j.duration_s:.1f} s", j.compute,
                  j.environment or "") for j in jobs], "No jobs yet.")
            return
        assets = self.ws.operations(kind).list()
        label = "data" if kind == "data" else f"{kind}s"
        rows: list[tuple[Any, ...]]
        if kind == "environment":
            rows = [(e.name, e.version, e.env_hash[:12], age(e.created_at),
                     "curated" if e.curated else "", e.tags) for e in assets]
            _show_table(["name", "version", "hash", "created", "", "tags"], rows,
                        f"No {label} yet.")
        elif kind in ("model", "data"):
            rows = [(a.name, a.version, a.spec.get("type"), age(a.created_at),
                     a.job_id or "", a.tags, a.description or "") for a in assets]
            _show_table(["name", "version", "type", "created", "from job", "tags",
                         "description"], rows, f"No {label} yet.")
        else:
            rows = [(a.name, a.version, age(a.created_at), a.description or "")
                    for a in assets]
            _show_table(["name", "version", "created", "description"], rows, f"No {label} yet.")

    def _show_one(self, kind: str, ref: str) -> None:
        if kind == "job":
            detail = self.ws.jobs.detail(ref)
            lines = detail_lines(detail.public_dict())
            tail = self.ws.jobs.logs(detail.job.id, tail=20)
            text = "\n".join(lines + (["log (last lines):", tail] if tail.strip() else []))
            _show(text, f"<pre style='font-size:12px'>{html.escape(text)}</pre>")
            return
        asset = self.ws.operations(kind).get(ref)
        data: dict[str, Any] = asset.public_dict()
        if kind == "environment":
            data.update(self.ws.describe(asset))
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
        _show(text, f"<pre style='font-size:12px'>{html.escape(text)}</pre>")


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with the running IPython."""
    ipython.register_magics(MlwsMagics)
    from jupyter_mlws.deploy_magics import DeployMagics

    ipython.register_magics(DeployMagics)
    from jupyter_mlws.sweeps.magics import SweepMagics  # %sweep

    ipython.register_magics(SweepMagics)
