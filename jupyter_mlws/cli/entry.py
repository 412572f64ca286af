"""Where the ``mlws`` command starts (``python -m jupyter_mlws.cli`` too).

``mlws job notebook NB [options]`` is handed to a running job agent with the standard library
alone (:mod:`jupyter_mlws.agent.fast`): no click, no command tree. That happens only for a
command line this module reads exactly as click would - the options of ``mlws job notebook``,
each given as separate words, the notebook (and ``--code``) checked as click checks them - and
only when the agent takes the submission; everything else (help, errors, other commands, an
unusual spelling, ``-i``/``--out``/``--stream``, no agent) goes to click, which then does not
ask the agent a second time. What is printed and the exit status are the same both ways: the
two call :func:`finish_fast`.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Sequence
from typing import Any

#: ``mlws job notebook``'s options that take one value: option -> its name in the command.
VALUED = {"-e": "environment", "--environment": "environment", "-c": "compute",
          "--compute": "compute", "--code": "code", "--experiment": "experiment",
          "--timeout": "timeout", "-w": "workspace_path", "--workspace": "workspace_path",
          "-o": "output", "--output": "output"}
PAIRS = ("-p", "--parameter")
FLAGS = {"--wait": "wait"}
OUTPUTS = ("table", "json", "yaml")


def _readable(path: str, *, folder: bool) -> bool:
    """What ``click.Path(exists=True)`` accepts: a readable file or anything but a folder
    (``dir_okay=False``), or a readable folder or anything but a file (``file_okay=False``)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    refused = stat.S_ISREG(st.st_mode) if folder else stat.S_ISDIR(st.st_mode)
    return not refused and os.access(path, os.R_OK)


def _converted(found: dict[str, Any]) -> dict[str, Any] | None:
    """The values as click converts them; ``None`` where click could say no."""
    if "timeout" in found:
        try:
            found["timeout"] = float(found["timeout"])
        except ValueError:
            return None
    if found.get("output", "table") not in OUTPUTS:
        return None
    if "code" in found and not _readable(found["code"], folder=True):
        return None
    workspace = found.get("workspace_path")
    if workspace is not None:
        try:
            if stat.S_ISREG(os.stat(workspace).st_mode):
                return None  # (click.Path(file_okay=False): "is a file")
        except (OSError, ValueError):
            pass
    if not _readable(found["notebook"], folder=False):
        return None
    return found


def parse_job_notebook(args: Sequence[str]) -> dict[str, Any] | None:
    """``mlws job notebook``'s arguments (after ``job notebook``) as click would pass them to
    the command, when the agent may take them; ``None`` for anything else (click reads it)."""
    found: dict[str, Any] = {"parameters": []}
    i = 0
    while i < len(args):
        word = args[i]
        if word in PAIRS and i + 2 < len(args) and not any(
                v.startswith("-") for v in args[i + 1:i + 3]):
            found["parameters"].append((args[i + 1], args[i + 2]))
            i += 3
        elif word in VALUED and i + 1 < len(args) and not args[i + 1].startswith("-") \
                and VALUED[word] not in found:
            found[VALUED[word]] = args[i + 1]
            i += 2
        elif word in FLAGS and FLAGS[word] not in found:
            found[FLAGS[word]] = True
            i += 1
        elif not word.startswith("-") and "notebook" not in found:
            found["notebook"] = word
            i += 1
        else:
            return None  # help, -i/--out/--stream, a repeat, `--x=y`, `-ojson`, a typo...
    if "notebook" not in found:
        return None
    return _converted(found)


def echo(text: str, *, err: bool = False) -> None:
    """``click.echo(text, nl=False)``: ANSI styles dropped when not writing to a terminal."""
    stream = sys.stderr if err else sys.stdout
    if "\x1b" in text and not stream.isatty():
        import re

        text = re.sub(r"\033\[[;?0-9]*[a-zA-Z]", "", text)  # (click's _ansi_re)
    stream.write(text)
    stream.flush()


def finish_fast(done: Any, *, wait: bool, stream: bool, workspace_path: str | None,
                output: str, echo: Callable[..., None]) -> int | None:
    """What follows an answer of the agent (:func:`jupyter_mlws.agent.fast.submit`): the exit
    status (a job waited for that did not complete raises ``SystemExit(1)``); ``None`` when
    the normal path goes on: the reply was lost (it recovers the job), or the job is followed
    the normal way (``--stream``, or an agent gone while waiting)."""
    from jupyter_mlws.agent import fast

    if isinstance(done, fast.Failed):
        echo(done.text, err=True)
        return 1
    if not isinstance(done, fast.Submitted):
        return None
    if not (wait or stream):
        echo(done.text)
        return 0
    if wait and not stream:
        ended = fast.wait(workspace_path, done.job_id, output)
        if ended is not None:
            echo(ended[0])
            if ended[1]:
                raise SystemExit(ended[1])
            return 0
    return None


def _quick(argv: Sequence[str]) -> int | None:
    """``mlws job notebook`` through the job agent; ``None``: click takes the command line."""
    if len(argv) < 2 or argv[0] != "job" or argv[1] != "notebook" or any(
            k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return None  # (click's shell completion reads _PROG_COMPLETE)
    found = parse_job_notebook(argv[2:])
    if found is None:
        return None
    from jupyter_mlws.agent import fast

    output = found.get("output", "table")
    done = fast.submit(found.get("workspace_path"), fast.notebook_options(
        found["notebook"], found["parameters"], found.get("code"), found.get("environment"),
        found.get("compute"), found.get("experiment"), found.get("timeout"), output))
    fast.ATTEMPTED = True  # (click's `mlws job notebook` does not ask the agent again)
    if done is None:
        return None
    status = finish_fast(done, wait=bool(found.get("wait")), stream=False,
                         workspace_path=found.get("workspace_path"), output=output, echo=echo)
    if status is not None:
        return status
    # the reply was lost, or the agent went away while the CLI waited: the normal path
    from jupyter_mlws.cli.job import continue_normally
    from jupyter_mlws.errors import MlwsError

    try:
        continue_normally(done, found, output)
    except MlwsError as exc:
        echo(f"error: {exc}\n", err=True)
        return 1
    return 0


def main() -> Any:
    """The ``mlws`` process: :func:`run`, then an exit that does not collect every object
    first (tenths of a second with the store and its models loaded; atexit hooks run)."""
    try:
        return run()
    finally:
        import gc

        gc.freeze()


def run(argv: Sequence[str] | None = None) -> Any:
    """The ``mlws`` command: the fast path when it applies, else click (which exits)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = _quick(args)
    except (EOFError, KeyboardInterrupt):
        echo("\nAborted!\n", err=True)  # (as click says it)
        return 1
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - (click: PacifyFlushWrapper)
        return 1
    if status is not None:
        return status
    from jupyter_mlws.cli._app import main as click_main

    return click_main(args=argv)
