/**
 * A sweep in the job view, followed live with the job: the best trial so far (or why there is
 * none), a small SVG chart of the primary metric by trial (each trial a dot coloured by its
 * status, the best-so-far line, the best ringed) and the trials table sorted by the objective.
 * Plain SVG: a chart library would weigh more than the whole extension for one scatter plot.
 */
import * as React from 'react';

import { duration } from './format';
import { ISweep, ISweepTrial } from './service';
import { StatusLabel } from './sidebar';

const W = 420;
const H = 170;
const PAD = { left: 48, right: 12, top: 10, bottom: 26 };

/** A parameter value as a short text. */
export function shown(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function metric(value?: number | null): string {
  return value === null || value === undefined ? '' : value.toPrecision(4);
}

/** The best value after each trial (by trial number), for the best-so-far line. */
export function bestSoFar(sweep: ISweep): [number, number][] {
  const done = sweep.trials
    .filter(t => t.status === 'Completed' && typeof t.value === 'number')
    .sort((a, b) => a.number - b.number);
  const better = (a: number, b: number) =>
    sweep.objective.goal === 'maximize' ? a > b : a < b;
  const out: [number, number][] = [];
  let best: number | null = null;
  for (const t of done) {
    if (best === null || better(t.value as number, best)) {
      best = t.value as number;
    }
    out.push([t.number, best]);
  }
  return out;
}

function statusKey(status: string): string {
  return status.toLowerCase().replace(/[^a-z]/g, '');
}

/** The metric by trial: x the trial number, y the primary metric. */
export function SweepChart(props: { sweep: ISweep }): JSX.Element {
  const { sweep } = props;
  const points = sweep.trials.filter(t => typeof t.value === 'number');
  const numbers = sweep.trials.map(t => t.number);
  const first = numbers.length ? Math.min(...numbers) : 0;
  const last = Math.max(first + (sweep.budget ?? 1) - 1, ...numbers, first);
  const values = points.map(t => t.value as number);
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (hi - lo < 1e-12) {
    lo -= Math.abs(lo) * 0.1 || 0.5;
    hi += Math.abs(hi) * 0.1 || 0.5;
  }
  const x = (k: number) =>
    PAD.left +
    (last === first ? 0.5 : (k - first) / (last - first)) * (W - PAD.left - PAD.right);
  const y = (v: number) => PAD.top + (1 - (v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);
  const line = bestSoFar(sweep)
    .map(([k, v]) => `${x(k).toFixed(1)},${y(v).toFixed(1)}`)
    .join(' ');
  const label = sweep.objective.primary_metric;
  return (
    <svg
      className="jp-mlws-sweep-chart"
      viewBox={`0 0 ${W} ${H}`}
      width={W}
      height={H}
      role="img"
      aria-label={`${label} by trial`}
    >
      <line
        className="jp-mlws-sweep-axis"
        x1={PAD.left}
        y1={H - PAD.bottom}
        x2={W - PAD.right}
        y2={H - PAD.bottom}
      />
      <line
        className="jp-mlws-sweep-axis"
        x1={PAD.left}
        y1={PAD.top}
        x2={PAD.left}
        y2={H - PAD.bottom}
      />
      <text className="jp-mlws-sweep-tick" x={PAD.left - 4} y={PAD.top + 8} textAnchor="end">
        {metric(hi)}
      </text>
      <text className="jp-mlws-sweep-tick" x={PAD.left - 4} y={H - PAD.bottom} textAnchor="end">
        {metric(lo)}
      </text>
      <text className="jp-mlws-sweep-tick" x={x(first)} y={H - 8} textAnchor="middle">
        {first}
      </text>
      {last > first && (
        <text className="jp-mlws-sweep-tick" x={x(last)} y={H - 8} textAnchor="middle">
          {last}
        </text>
      )}
      <text
        className="jp-mlws-sweep-tick"
        x={(PAD.left + W - PAD.right) / 2}
        y={H - 2}
        textAnchor="middle"
      >
        trial
      </text>
      {line && <polyline className="jp-mlws-sweep-best-line" points={line} />}
      {points.map(t => {
        const best = sweep.best?.number === t.number;
        const cls = `jp-mlws-sweep-point jp-mlws-sweep-point-${statusKey(t.status)}`;
        return (
          <circle
            key={t.number}
            className={best ? `${cls} jp-mlws-sweep-point-best` : cls}
            data-mlws-trial={t.number}
            cx={x(t.number)}
            cy={y(t.value as number)}
            r={best ? 5.5 : 3.5}
          >
            <title>{`trial ${t.number}: ${label}=${metric(t.value)} (${t.status})`}</title>
          </circle>
        );
      })}
    </svg>
  );
}

function Best(props: { sweep: ISweep }): JSX.Element {
  const { sweep } = props;
  const best = sweep.best;
  if (!best) {
    return (
      <div className={`jp-mlws-sweep-best ${sweep.problem ? 'jp-mlws-error' : 'jp-mlws-muted'}`}>
        {sweep.problem ? `No best trial: ${sweep.problem}` : 'No trial has completed yet.'}
      </div>
    );
  }
  const params = Object.entries(best.params)
    .map(([k, v]) => `${k}=${shown(v)}`)
    .join(', ');
  return (
    <div className="jp-mlws-sweep-best" data-mlws-best-trial={best.number}>
      Best{sweep.status === 'Completed' ? '' : ' so far'}: trial {best.number},{' '}
      <b>
        {sweep.objective.primary_metric} = {metric(best.value)}
      </b>{' '}
      with <code>{params}</code>
    </div>
  );
}

function TrialRow(props: {
  trial: ISweepTrial;
  names: string[];
  best: boolean;
  openJob?: (id: string) => void;
}): JSX.Element {
  const { trial, names, best, openJob } = props;
  return (
    <tr
      className={`jp-mlws-sweep-trial${best ? ' jp-mlws-sweep-trial-best' : ''}`}
      data-mlws-trial={trial.number}
      title={trial.reason ?? undefined}
    >
      <td className="jp-mlws-num">{trial.number}</td>
      {names.map(name => (
        <td key={name} className="jp-mlws-num">
          {name in trial.params ? shown(trial.params[name]) : ''}
        </td>
      ))}
      <td>
        <StatusLabel status={trial.status} />
      </td>
      <td className="jp-mlws-num jp-mlws-sweep-value">{metric(trial.value)}</td>
      <td className="jp-mlws-num">{duration(trial.duration_s)}</td>
      <td>
        {trial.job && openJob ? (
          <a className="jp-mlws-sweep-job" onClick={() => openJob(trial.job as string)}>
            {trial.job}
          </a>
        ) : (
          (trial.job ?? '')
        )}
      </td>
    </tr>
  );
}

/** The sweep's block of the job view. */
export function SweepPanel(props: {
  sweep: ISweep;
  openJob?: (id: string) => void;
}): JSX.Element {
  const { sweep, openJob } = props;
  const names = Array.from(new Set(sweep.trials.flatMap(t => Object.keys(t.params))));
  const { goal, primary_metric: key } = sweep.objective;
  return (
    <div className="jp-mlws-block jp-mlws-sweep" data-mlws-sweep={sweep.sweep}>
      <h3>
        Trials{' '}
        <span className="jp-mlws-muted">
          {goal} {key} · {sweep.trials.length}
          {sweep.budget ? `/${sweep.budget}` : ''} trials
          {sweep.stopped ? ` · stopped: ${sweep.stopped}` : ''}
        </span>
      </h3>
      <Best sweep={sweep} />
      <SweepChart sweep={sweep} />
      {sweep.trials.length === 0 ? (
        <div className="jp-mlws-empty">No trial has started yet.</div>
      ) : (
        <table className="jp-mlws-table jp-mlws-sweep-trials">
          <thead>
            <tr>
              <th>trial</th>
              {names.map(n => (
                <th key={n}>{n}</th>
              ))}
              <th>status</th>
              <th>{key}</th>
              <th>duration</th>
              <th>job</th>
            </tr>
          </thead>
          <tbody>
            {sweep.trials.map(t => (
              <TrialRow
                key={t.number}
                trial={t}
                names={names}
                best={sweep.best?.number === t.number}
                openJob={openJob}
              />
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
