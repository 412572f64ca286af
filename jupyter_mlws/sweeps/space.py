"""The search space: Azure ML parameter expressions, read from YAML or from ``--search`` text.

Each expression draws its value through an Optuna trial, so every sampler (grid, random, TPE)
sees the same space. Optuna has no normal distribution: the normal family draws a uniform
``u`` in (0, 1) and maps it through the normal's inverse CDF (``statistics.NormalDist``), so
random sampling gives exactly a normal and TPE models ``u``. Azure's semantics are kept:
``loguniform(a, b)`` is ``exp(uniform(a, b))`` (the bounds are exponents), ``q*`` rounds to a
multiple of ``q``, ``randint(upper)`` is ``0 .. upper-1``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from jupyter_mlws.errors import SpecError

#: Expression type -> its fields, in the order ``--search`` takes them positionally.
FIELDS: dict[str, tuple[str, ...]] = {
    "choice": ("values",), "randint": ("upper",),
    "uniform": ("min_value", "max_value"), "loguniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"), "qloguniform": ("min_value", "max_value", "q"),
    "normal": ("mu", "sigma"), "lognormal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"), "qlognormal": ("mu", "sigma", "q"),
}
_EPS = 1e-12


@dataclass(frozen=True)
class Expression:
    """One hyperparameter: its name, type and fields (as in the YAML)."""

    name: str
    type: str
    fields: dict[str, Any]

    @property
    def continuous(self) -> bool:
        return self.type not in ("choice",)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.fields}

    def suggest(self, trial: Any) -> tuple[Any, Any]:
        """(the trial's value, Optuna's internal value) drawn through ``trial``."""
        f, t = self.fields, self.type
        if t == "choice":
            i = trial.suggest_categorical(self.name, list(range(len(f["values"]))))
            return f["values"][i], i
        if t == "randint":
            v = trial.suggest_int(self.name, 0, int(f["upper"]) - 1)
            return v, v
        if t in ("uniform", "quniform"):
            x = trial.suggest_float(self.name, float(f["min_value"]), float(f["max_value"]))
            return (_q(x, f["q"]) if t == "quniform" else x), x
        if t in ("loguniform", "qloguniform"):
            x = trial.suggest_float(self.name, math.exp(f["min_value"]),
                                    math.exp(f["max_value"]), log=True)
            return (_q(x, f["q"]) if t == "qloguniform" else x), x
        u = trial.suggest_float(self.name, _EPS, 1 - _EPS)
        x = NormalDist(float(f["mu"]), float(f["sigma"])).inv_cdf(u)
        if t in ("lognormal", "qlognormal"):
            x = math.exp(x)
        return (_q(x, f["q"]) if t.startswith("q") else x), u

    def distribution(self) -> Any:
        """The Optuna distribution of the internal value (to replay finished trials)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        f, t = self.fields, self.type
        if t == "choice":
            return CategoricalDistribution(list(range(len(f["values"]))))
        if t == "randint":
            return IntDistribution(0, int(f["upper"]) - 1)
        if t in ("uniform", "quniform"):
            return FloatDistribution(float(f["min_value"]), float(f["max_value"]))
        if t in ("loguniform", "qloguniform"):
            return FloatDistribution(math.exp(f["min_value"]), math.exp(f["max_value"]), log=True)
        return FloatDistribution(_EPS, 1 - _EPS)


def _q(x: float, q: Any) -> float | int:
    value = round(x / float(q)) * float(q)
    return int(value) if float(q).is_integer() else value


def parse_space(space: Any, *, where: str = "search_space") -> list[Expression]:
    """The YAML ``search_space`` mapping as expressions; each problem is a SpecError."""
    if not isinstance(space, Mapping) or not space:
        raise SpecError("a sweep needs a search space: a mapping of parameter -> expression",
                        field=where, hint="e.g. lr: {type: loguniform, min_value: -6, "
                        "max_value: -1}")
    return [parse_expression(str(name), spec, where=f"{where}.{name}")
            for name, spec in space.items()]


def parse_expression(name: str, spec: Any, *, where: str) -> Expression:
    """One ``{type: ..., ...}`` expression, checked."""
    if not name.isidentifier():
        raise SpecError(f"{name!r} is not a parameter name (letters, digits, _)", field=where)
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise SpecError("a parameter expression is a mapping with a 'type'", field=where,
                        hint=f"Types: {', '.join(FIELDS)}.")
    kind = str(spec["type"]).lower()
    if kind not in FIELDS:
        raise SpecError(f"unknown search space type {spec['type']!r}", field=where,
                        hint=f"Use one of {', '.join(FIELDS)}.")
    fields = {k: v for k, v in spec.items() if k != "type"}
    extra = sorted(set(fields) - set(FIELDS[kind]))
    missing = [k for k in FIELDS[kind] if k not in fields]
    if extra or missing:
        what = (f"has no field(s) {', '.join(extra)}" if extra
                else f"needs {', '.join(missing)}")
        raise SpecError(f"{kind} {what}", field=where,
                        hint=f"{kind} takes {', '.join(FIELDS[kind])}.")
    _check_fields(kind, fields, where)
    if kind == "choice":
        fields["values"] = list(fields["values"])
    return Expression(name, kind, fields)


def _check_fields(kind: str, f: dict[str, Any], where: str) -> None:
    if kind == "choice":
        values = f["values"]
        if not isinstance(values, (list, tuple)) or not values:
            raise SpecError("choice needs a non-empty list of values", field=where)
        return
    for key, value in f.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{kind}: {key} must be a number, not {value!r}", field=where)
    if kind == "randint" and (not float(f["upper"]).is_integer() or f["upper"] < 1):
        raise SpecError("randint: upper must be an integer of at least 1 (values are "
                        "0 .. upper-1)", field=where)
    if "min_value" in f and f["min_value"] >= f["max_value"]:
        raise SpecError(f"{kind}: min_value ({f['min_value']}) must be below max_value "
                        f"({f['max_value']})", field=where)
    if kind in ("loguniform", "qloguniform") and f["max_value"] > 700:
        raise SpecError(f"{kind}: the bounds are exponents (exp(min_value) .. exp(max_value)); "
                        f"{f['max_value']} is far too large", field=where,
                        hint="e.g. loguniform(-6, 0) draws from 0.0025 to 1.")
    if "sigma" in f and f["sigma"] <= 0:
        raise SpecError(f"{kind}: sigma must be above 0", field=where)
    if "q" in f and f["q"] <= 0:
        raise SpecError(f"{kind}: q must be above 0", field=where)


def parse_search_option(text: str) -> tuple[str, dict[str, Any]]:
    """``C=loguniform(-4, 2)`` or ``kernel=choice("rbf", "linear")`` -> (name, YAML mapping).

    Arguments are Python literals (and ``range(...)`` inside ``choice``), positional in the
    order of :data:`FIELDS` or by keyword.
    """
    where = f"--search {text!r}"
    name, sep, expr = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise SpecError("expected NAME=EXPRESSION, e.g. lr=loguniform(-6, -1)", field=where)
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise SpecError(f"{expr.strip()!r} is not an expression like uniform(0, 1)", field=where,
                        hint=f"Types: {', '.join(FIELDS)}.")
    kind = node.func.id.lower()
    if kind not in FIELDS:
        raise SpecError(f"unknown search space type {node.func.id!r}", field=where,
                        hint=f"Use one of {', '.join(FIELDS)}.")
    try:
        args = [_literal(a) for a in node.args]
        kwargs = {k.arg: _literal(k.value) for k in node.keywords if k.arg}
    except ValueError as exc:
        raise SpecError(f"{exc}", field=where) from None
    if kind == "choice" and args:
        args = [args[0] if len(args) == 1 and isinstance(args[0], list) else args]
    if len(args) > len(FIELDS[kind]):
        raise SpecError(f"{kind} takes {len(FIELDS[kind])} argument(s): "
                        f"{', '.join(FIELDS[kind])}", field=where)
    spec = {"type": kind, **dict(zip(FIELDS[kind], args)), **kwargs}
    parse_expression(name, spec, where=where)  # the same checks as the YAML
    return name, spec


def _literal(node: ast.expr) -> Any:
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "range"):
        return list(range(*[int(_literal(a)) for a in node.args]))
    try:
        value = ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"{ast.unparse(node)!r} is not a literal (quote strings: "
                         "choice(\"rbf\", \"linear\"))") from None
    return list(value) if isinstance(value, tuple) else value


def sample_values(space: list[Expression]) -> dict[str, Any]:
    """One representative value per parameter (to check names and types before a sweep)."""
    out: dict[str, Any] = {}
    for e in space:
        f = e.fields
        if e.type == "choice":
            out[e.name] = f["values"][0]
        elif e.type == "randint" or (e.type.startswith("q") and float(f["q"]).is_integer()):
            out[e.name] = 1
        else:
            out[e.name] = 0.5
    return out
