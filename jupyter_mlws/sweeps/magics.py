"""``%sweep``: run a notebook over a search space, with the flags of ``mlws job sweep``.

    %sweep train.ipynb --search 'C=loguniform(-4,2)' --search 'kernel=choice("rbf","linear")'
           --metric accuracy --goal maximize --max-trials 20 --max-concurrent 2 [--wait]

Without NOTEBOOK it sweeps the saved notebook the cell is in (as ``%submit`` does). The job
monitor shows the trials live: the table, the best so far and the plots.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from jupyter_mlws.jobs.requests import parse_pairs
from jupyter_mlws.magics import MagicError, _one_line_errors, _parse, _Parser


def _parser() -> _Parser:
    p = _Parser(prog="%sweep", description="Run a notebook over a search space.")
    p.add_argument("notebook", nargs="?",
                   help="the notebook (default: the saved notebook this cell is in)")
    p.add_argument("--search", action="append", metavar="NAME=EXPR", required=True)
    p.add_argument("--metric", required=True)
    p.add_argument("--goal", choices=["maximize", "minimize"], default="maximize")
    p.add_argument("--max-trials", type=int, default=20)
    p.add_argument("--max-concurrent", type=int)
    p.add_argument("--sampling", choices=["random", "grid", "bayesian"], default="random")
    p.add_argument("--seed", type=int)
    p.add_argument("--early-termination", choices=["bandit", "median", "truncation"])
    p.add_argument("--slack-factor", type=float)
    p.add_argument("--truncation-percentage", type=float)
    p.add_argument("--evaluation-interval", type=int, default=1)
    p.add_argument("--delay-evaluation", type=int, default=0)
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"))
    p.add_argument("--trial-timeout", type=float)
    p.add_argument("--timeout", type=float)
    p.add_argument("-e", "--environment")
    p.add_argument("-c", "--compute")
    p.add_argument("--wait", action="store_true", help="block until the sweep ends")
    return p


@magics_class
class SweepMagics(Magics):
    """``%sweep``; shares the workspace of the ``%submit`` magics."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._parser = _parser()
        self.last_sweep_id: str | None = None

    def _mlws(self) -> Any:
        registry: dict[str, Any] = self.shell.magics_manager.registry if self.shell else {}
        mlws = registry.get("MlwsMagics")
        if mlws is None:
            raise MagicError("%sweep: load the extension first: %load_ext jupyter_mlws")
        return mlws

    @line_magic
    def sweep(self, line: str) -> None:
        """Start a notebook sweep and show it live (``--wait`` blocks until it ends)."""
        self._sweep(line)

    @_one_line_errors
    def _sweep(self, line: str) -> None:
        from jupyter_mlws.sweeps.request import notebook_sweep_spec, sweep_text

        args = _parse(self._parser, line)
        mlws = self._mlws()
        notebook = mlws.target_notebook(args.notebook, "%sweep", "a trial does not sweep itself")
        if notebook is None:
            return
        spec = notebook_sweep_spec(
            notebook, args.search, metric=args.metric, goal=args.goal,
            max_trials=args.max_trials,
            max_concurrent=args.max_concurrent or min(2, args.max_trials),
            sampling=args.sampling, seed=args.seed, early_termination=args.early_termination,
            slack_factor=args.slack_factor, truncation_percentage=args.truncation_percentage,
            evaluation_interval=args.evaluation_interval,
            delay_evaluation=args.delay_evaluation, environment=args.environment,
            parameters=parse_pairs(args.param), timeout=args.timeout,
            trial_timeout=args.trial_timeout)
        ws = mlws.ws
        job = ws.jobs.submit_sweep(spec, compute=args.compute)
        self.last_sweep_id = mlws.last_job_id = job.id
        job = mlws.monitor(job.id, "sweep", wait=args.wait)
        if job is None:
            return
        print(f"Sweep {job.id} {job.status}" + (f": {job.error}" if job.error else ""))
        print(sweep_text(ws.jobs.sweep_view(job.id)))
        if job.status != "Completed":
            raise MagicError(f"Sweep {job.id} {job.status}. Its trials: %mlws show job {job.id}")
