"""Sweeps: run a notebook or a command over a search space as trial jobs of a parent job.

``space`` (Azure parameter expressions), ``sampler`` (Optuna samplers and pruners, the bandit
policy), ``spec`` (the ``sweepJob`` YAML), ``submit`` (checks and the parent job), ``run`` (the
sweep on the job template), ``view`` (the trials table and the best trial).
"""
