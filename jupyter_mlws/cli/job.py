"""``mlws job ...``: submit, follow and inspect jobs.

Each submission builds a request model (:mod:`jupyter_mlws.jobs.requests`), whose one literal
parser types ``-p``/``-i`` values as the magics and the REST server do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from jupyter_mlws.cli._common import OUTPUT, WORKSPACE, open_workspace, with_options

# (the tables and the request models load in the commands that use them: `mlws job notebook`
# submitted through the job agent imports neither; see jupyter_mlws.agent.fast)


@click.group()
def job() -> None:
    """Jobs: notebooks, commands and pipelines on a compute target."""


def _job_row(j: Any) -> dict[str, Any]:
    from jupyter_mlws.cli._format import age

    d = j.public_dict()
    d["created"] = age(j.created_at)
    d["duration"] = f"{j.duration_s:.1f} s" if j.duration_s is not None else ""
    d["name"] = j.display_name or ""
    return d


JOB_COLUMNS = [("id", "id"), ("type", "type"), ("status", "status"), ("name", "name"),
               ("compute", "compute"), ("created", "created"), ("duration", "duration")]
#: Shown besides in a team workspace: the machine running each job and who submitted it.
TEAM_COLUMNS = [("host", "host"), ("created_by", "created_by")]


def _after_submit(ws: Any, j: Any, wait: bool, stream: bool, output: str) -> None:
    from jupyter_mlws.jobs.notebook_request import submitted_text

    if stream:
        for line in ws.jobs.stream(j.id):
            click.echo(line)
        j = ws.jobs.get(j.id)
    elif wait:
        j = ws.jobs.wait(j.id)
    text, code = submitted_text(j, waited=wait or stream, output=output)
    click.echo(text, nl=False)
    if code:
        raise SystemExit(code)


SUBMIT_OPTS = [
    click.option("-e", "--environment", help="Environment (NAME, NAME:VERSION, NAME@latest)."),
    click.option("-c", "--compute", help="Compute target (default: local)."),
    click.option("-i", "--input", "inputs", multiple=True,
                 help="An input name=value: a data/model reference, a path or a literal."),
    click.option("--out", "outputs", multiple=True, help="A named output folder (repeatable)."),
    click.option("--experiment", help="Group jobs under an experiment name."),
    click.option("--timeout", type=float, help="Fail the job after this many seconds."),
    click.option("--wait", is_flag=True, help="Wait until the job ends (exit 1 unless Completed)."),
    click.option("--stream", is_flag=True, help="Print the log as it comes, until the job ends."),
    WORKSPACE, OUTPUT,
]


@job.command("notebook")
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False))
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True,
              metavar="NAME VALUE", help="A parameter; the value is read as a Python literal.")
@click.option("--code", type=click.Path(exists=True, file_okay=False),
              help="The folder to snapshot (default: the notebook's folder).")
def job_notebook(notebook: str, parameters: Sequence[tuple[str, str]], code: str | None,
                 environment: str | None, compute: str | None, inputs: Sequence[str],
                 outputs: Sequence[str], experiment: str | None, timeout: float | None,
                 wait: bool, stream: bool, workspace_path: str | None, output: str) -> None:
    """Run a notebook with papermill as a job."""
    from jupyter_mlws.agent import fast

    done = None
    if not (inputs or outputs or fast.ATTEMPTED):  # through the job agent when it runs (the
        done = fast.submit(workspace_path, fast.notebook_options(  # same job, faster)
            notebook, parameters, code, environment, compute, experiment, timeout, output))
    if done is not None:
        from jupyter_mlws.cli.entry import finish_fast

        status = finish_fast(done, wait=wait, stream=stream, workspace_path=workspace_path,
                             output=output, echo=_echo)
        if status:
            click.get_current_context().exit(status)
        if status is not None:
            return
    _submit_normally(done, notebook, parameters, code, environment, compute, inputs, outputs,
                     experiment, timeout, wait, stream, workspace_path, output)


def _echo(text: str, *, err: bool = False) -> None:
    click.echo(text, err=err, nl=False)


def continue_normally(done: Any, found: dict[str, Any], output: str) -> None:
    """After :func:`jupyter_mlws.cli.entry.finish_fast` said so: what ``mlws job notebook``
    does next with the options ``found`` (as :func:`~jupyter_mlws.cli.entry.parse_job_notebook`
    read them)."""
    _submit_normally(done, found["notebook"], found["parameters"], found.get("code"),
                     found.get("environment"), found.get("compute"), (), (),
                     found.get("experiment"), found.get("timeout"), bool(found.get("wait")),
                     False, found.get("workspace_path"), output)


def _submit_normally(done: Any, notebook: str, parameters: Sequence[tuple[str, str]],
                     code: str | None, environment: str | None, compute: str | None,
                     inputs: Sequence[str], outputs: Sequence[str], experiment: str | None,
                     timeout: float | None, wait: bool, stream: bool,
                     workspace_path: str | None, output: str) -> None:
    """Submit without the agent (``done``: what it answered: a job it submitted, followed
    here, or a lost reply, whose job is recovered), then print and wait as asked."""
    from jupyter_mlws.agent import fast

    ws = open_workspace(workspace_path)
    if isinstance(done, fast.Submitted):  # (the agent went away while waiting, or --stream)
        _after_submit(ws, ws.jobs.get(done.job_id), wait, stream, output)
        return
    try:
        from jupyter_mlws.agent.intake import recover

        j = recover(ws, done.request_id) if isinstance(done, fast.Lost) else None
        if j is None:
            from jupyter_mlws.jobs.notebook_request import notebook_request

            j = ws.jobs.submit(notebook_request(notebook, parameters, code, environment,
                                                compute, inputs, outputs, experiment, timeout))
    finally:
        _start_agent(ws)
    _after_submit(ws, j, wait, stream, output)


def _start_agent(ws: Any) -> None:
    """Start the job agent (detached) if its setting allows, so the next submission is fast."""
    from jupyter_mlws.agent import client
    from jupyter_mlws.agent.settings import read_settings

    if read_settings(ws.path) is not None:
        import contextlib
        import sys

        with contextlib.suppress(Exception):  # (an accelerator: never the CLI's failure)
            client.start_agent(ws.path, python=sys.executable)


job_notebook = with_options(SUBMIT_OPTS, job_notebook)


@job.command("command")
@click.argument("command")
@click.option("--code", type=click.Path(exists=True, file_okay=False))
def job_command(command: str, code: str | None, environment: str | None, compute: str | None,
                inputs: Sequence[str], outputs: Sequence[str], experiment: str | None,
                timeout: float | None, wait: bool, stream: bool, workspace_path: str | None,
                output: str) -> None:
    """Run a shell command as a job (${{inputs.x}} and ${{outputs.y}} are filled in)."""
    from jupyter_mlws.jobs.requests import CommandJobRequest, parse_assignments

    ws = open_workspace(workspace_path)
    request = CommandJobRequest.create(
        command=command, code=code, environment=environment, compute=compute,
        inputs=parse_assignments(inputs, "--input"),
        outputs={o: {"type": "uri_folder"} for o in outputs}, experiment=experiment,
        timeout=timeout)
    _after_submit(ws, ws.jobs.submit(request), wait, stream, output)


job_command = with_options(SUBMIT_OPTS, job_command)


@job.command("create")
@click.option("-f", "--file", "file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-c", "--compute", help="Override the spec's compute.")
@click.option("--wait", is_flag=True)
@click.option("--stream", is_flag=True)
@WORKSPACE
@OUTPUT
def job_create(file: str, compute: str | None, wait: bool, stream: bool,
               workspace_path: str | None, output: str) -> None:
    """Submit a command or pipeline job from its YAML (Azure ML CLI v2 shapes)."""
    ws = open_workspace(workspace_path)
    j = ws.jobs.create_from_file(file, **({"compute": compute} if compute else {}))
    spec = j.spec or {}
    for note in spec.get("notes") or (spec.get("settings") or {}).get("file_notes") or []:
        click.echo(note, err=True)  # also at the top of the job's log
    _after_submit(ws, j, wait, stream, output)


@job.command("list")
@click.option("--status", multiple=True, help="Only jobs in this state (repeatable).")
@click.option("--experiment")
@click.option("--parent", help="The steps of this pipeline job.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@click.option("--created-by", "created_by", metavar="ME|USER",
              help="Only jobs this user submitted (ME: yours; USER matches USER@any host).")
@WORKSPACE
@OUTPUT
def job_list(status: Sequence[str], experiment: str | None, parent: str | None, limit: int,
             offset: int, created_by: str | None, workspace_path: str | None,
             output: str) -> None:
    """Jobs, newest first (in a team workspace, with the host running each and its creator)."""
    from jupyter_mlws.cli._format import emit, print_table

    ws = open_workspace(workspace_path)
    jobs = ws.jobs.list(status=list(status) or None, experiment=experiment, parent_id=parent,
                        limit=limit, offset=offset, created_by=created_by)
    columns = JOB_COLUMNS + TEAM_COLUMNS if ws.jobs.shared else JOB_COLUMNS
    emit([j.public_dict() for j in jobs], output,
         table=lambda: print_table([_job_row(j) for j in jobs], columns))


@job.command("show")
@click.argument("job_id")
@WORKSPACE
@OUTPUT
def job_show(job_id: str, workspace_path: str | None, output: str) -> None:
    """A job: its states, what it consumed and produced, its metrics, the files it kept in
    ./outputs and ./logs."""
    from jupyter_mlws.cli._format import detail_lines, emit
    from jupyter_mlws.jobs.azure_compat import kept_files

    ws = open_workspace(workspace_path)
    data = ws.jobs.detail(job_id).public_dict()
    kept = kept_files(ws.jobs.paths(ws.jobs.get(job_id).id))
    data["artifacts"] = kept
    listed = [f"{'artifacts:' if i == 0 else '':<14}{k}" for i, k in enumerate(kept)]
    if data.get("type") == "sweep":  # the trials table, sorted by the objective
        from jupyter_mlws.sweeps.request import sweep_text

        view = ws.jobs.sweep_view(job_id)
        data["sweep"] = view.public_dict()
        listed += ["trials:", sweep_text(view)]
    emit(data, output, table=lambda: click.echo("\n".join(detail_lines(data) + listed)))


@job.command("logs")
@click.argument("job_id")
@click.option("--tail", type=int, help="Only the last N lines.")
@WORKSPACE
def job_logs(job_id: str, tail: int | None, workspace_path: str | None) -> None:
    """Print a job's log (the environment preparation, then what the job printed)."""
    click.echo(open_workspace(workspace_path).jobs.logs(job_id, tail=tail), nl=False)


@job.command("stream")
@click.argument("job_id")
@WORKSPACE
def job_stream(job_id: str, workspace_path: str | None) -> None:
    """Print a job's log as it is written, until the job ends."""
    ws = open_workspace(workspace_path)
    for line in ws.jobs.stream(job_id):
        click.echo(line)
    j = ws.jobs.get(job_id)
    click.echo(f"Job {j.id}: {j.status}" + (f" ({j.error})" if j.error else ""), err=True)


@job.command("cancel")
@click.argument("job_id")
@WORKSPACE
def job_cancel(job_id: str, workspace_path: str | None) -> None:
    """Stop a job and everything it started."""
    ws = open_workspace(workspace_path)
    ws.jobs.cancel(job_id)
    j = ws.jobs.wait(job_id, timeout=60)
    click.echo(f"Job {j.id}: {j.status}")


@job.command("rerun")
@click.argument("job_id")
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE")
@click.option("-c", "--compute")
@click.option("--resume", is_flag=True,
              help="A sweep: keep the trials that ended and run only the rest.")
@WORKSPACE
@OUTPUT
def job_rerun(job_id: str, parameters: Sequence[tuple[str, str]], compute: str | None,
              resume: bool, workspace_path: str | None, output: str) -> None:
    """Submit a job again (parameters can be changed; a sweep can be resumed)."""
    from jupyter_mlws.jobs.requests import parse_pairs

    ws = open_workspace(workspace_path)
    extra: dict[str, Any] = {"parameters": parse_pairs(parameters)}
    if resume:
        extra["resume"] = True
    if compute:
        extra["compute"] = compute
    _after_submit(ws, ws.jobs.rerun(job_id, **extra), False, False, output)


@job.command("download")
@click.argument("job_id")
@click.option("-d", "--dest", type=click.Path(file_okay=False), default=".", show_default=True)
@click.option("--what", type=click.Choice(["all", "outputs", "logs", "notebook"]), default="all",
              show_default=True)
@click.option("--best", is_flag=True, help="A sweep: download its best trial.")
@WORKSPACE
def job_download(job_id: str, dest: str, what: str, best: bool,
                 workspace_path: str | None) -> None:
    """Copy a job's outputs, logs and output notebook into DEST/<job id>."""
    ws = open_workspace(workspace_path)
    if best:
        job_id = ws.jobs.best_trial(job_id)
    click.echo(str(ws.jobs.download(job_id, dest, what=what)))


@job.command("sweep")
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False))
@click.option("--search", "searches", multiple=True, metavar="NAME=EXPR",
              help="A swept parameter, e.g. 'C=loguniform(-4,2)' or "
              "'kernel=choice(\"rbf\",\"linear\")' (repeatable).")
@click.option("--metric", required=True, help="The primary metric the notebook logs.")
@click.option("--goal", type=click.Choice(["maximize", "minimize"]), default="maximize",
              show_default=True)
@click.option("--max-trials", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--max-concurrent", type=click.IntRange(min=1), help="Default: 2.")
@click.option("--sampling", type=click.Choice(["random", "grid", "bayesian"]), default="random",
              show_default=True)
@click.option("--seed", type=int, help="Seed of the random and bayesian samplers.")
@click.option("--early-termination", type=click.Choice(["bandit", "median", "truncation"]))
@click.option("--slack-factor", type=float, help="Bandit slack factor (default 0.1).")
@click.option("--truncation-percentage", type=float, help="Default 20.")
@click.option("--evaluation-interval", type=click.IntRange(min=1), default=1)
@click.option("--delay-evaluation", type=click.IntRange(min=0), default=0)
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A fixed parameter of every trial (a Python literal).")
@click.option("--trial-timeout", type=float, help="Fail a trial after this many seconds.")
@click.option("--timeout", type=float, help="Stop the sweep after this many seconds.")
@click.option("-e", "--environment")
@click.option("-c", "--compute")
@click.option("--experiment")
@click.option("--wait", is_flag=True, help="Wait until the sweep ends, then show its trials.")
@WORKSPACE
@OUTPUT
def job_sweep(notebook: str, searches: Sequence[str], metric: str, goal: str, max_trials: int,
              max_concurrent: int | None, sampling: str, seed: int | None,
              early_termination: str | None, slack_factor: float | None,
              truncation_percentage: float | None, evaluation_interval: int,
              delay_evaluation: int, parameters: Sequence[tuple[str, str]],
              trial_timeout: float | None, timeout: float | None, environment: str | None,
              compute: str | None, experiment: str | None, wait: bool,
              workspace_path: str | None, output: str) -> None:
    """Run a notebook over a search space: one trial job per drawn set of parameters."""
    from jupyter_mlws.cli._format import emit
    from jupyter_mlws.jobs.requests import parse_pairs
    from jupyter_mlws.sweeps.request import notebook_sweep_spec, sweep_text

    ws = open_workspace(workspace_path)
    spec = notebook_sweep_spec(
        notebook, searches, metric=metric, goal=goal, max_trials=max_trials,
        max_concurrent=max_concurrent or min(2, max_trials), sampling=sampling, seed=seed,
        early_termination=early_termination, slack_factor=slack_factor,
        truncation_percentage=truncation_percentage, evaluation_interval=evaluation_interval,
        delay_evaluation=delay_evaluation, environment=environment,
        parameters=parse_pairs(parameters), timeout=timeout, trial_timeout=trial_timeout)
    j = ws.jobs.submit_sweep(spec, compute=compute, experiment=experiment)
    if wait:
        j = ws.jobs.wait(j.id)
    if output != "table":
        emit({**j.public_dict(), "sweep": ws.jobs.sweep_view(j.id).public_dict()}, output)
    else:
        click.echo(f"Sweep {j.id}: {j.status}" + (f" ({j.error})" if j.error else ""))
        if wait:
            click.echo(sweep_text(ws.jobs.sweep_view(j.id)))
        else:
            click.echo(f"  see its trials with `mlws job show {j.id}`")
    if wait and j.status != "Completed":
        raise SystemExit(1)
