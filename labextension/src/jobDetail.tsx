/**
 * The detail view of one job (a main-area tab): status and events, the log (followed by byte
 * offset every second while the job is active), metrics, parameters, outputs, and the actions
 * "Open output notebook" and "Cancel"; a sweep's trials, best trial and chart (sweepView.tsx).
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget, runningIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import * as React from 'react';

import { duration, when } from './format';
import { MlwsApiError } from './request';
import { IJobDetail, IMetric, isTerminal, MlwsService } from './service';
import { StatusLabel } from './sidebar';
import { SweepPanel } from './sweepView';

/** How often an active job is followed (ms). */
export const FOLLOW_MS = 1000;
/** Lines of log fetched when the view opens (the tail; the rest is followed by offset). */
export const LOG_TAIL_LINES = 500;
/** The most log text kept in the view (characters); older text is dropped. */
export const LOG_MAX_CHARS = 400_000;

function errorText(error: unknown): string {
  return error instanceof MlwsApiError
    ? error.display
    : ((error as Error)?.message ?? String(error));
}

/** What the view shows; refreshed by `JobFollower`. */
class JobState {
  constructor(
    readonly service: MlwsService,
    readonly id: string
  ) {}

  job: IJobDetail | null = null;
  log = '';
  logOffset: number | null = null;
  logDone = false;
  metrics: IMetric[] = [];
  error = '';
  actionError = '';
  busy = '';

  get changed(): ISignal<this, void> {
    return this._changed;
  }
  emit(): void {
    this._changed.emit();
  }

  /** One round: the job, new log text, and (while active or once at the end) metrics. */
  async tick(): Promise<void> {
    const wasActive = !this.job || !isTerminal(this.job.status);
    try {
      const job = await this.service.getJob(this.id);
      this.job = job;
      if (!this.logDone) {
        const chunk =
          this.logOffset === null
            ? await this.service.getLogs(this.id, 0, LOG_TAIL_LINES)
            : await this.service.getLogs(this.id, this.logOffset);
        this.log += chunk.text;
        if (this.log.length > LOG_MAX_CHARS) {
          const cut = this.log.indexOf('\n', this.log.length - LOG_MAX_CHARS);
          this.log = this.log.slice(cut >= 0 ? cut + 1 : this.log.length - LOG_MAX_CHARS);
        }
        this.logOffset = chunk.offset;
        this.logDone = chunk.done;
      }
      if (wasActive || this.metrics.length === 0) {
        this.metrics = await this.service.getMetrics(this.id);
      }
      this.error = '';
    } catch (error) {
      this.error = errorText(error);
      this.emit();
      throw error;
    }
    this.emit();
  }

  /** Nothing will change any more. */
  get finished(): boolean {
    return !!this.job && isTerminal(this.job.status) && this.logDone;
  }

  private _changed = new Signal<this, void>(this);
}

/** What the view can ask the application to do. */
export interface IJobActions {
  /** Open a notebook (path relative to the server root). */
  openPath: (path: string) => Promise<unknown>;
  /** A job changed (e.g. canceled): let the sidebar know. */
  jobChanged?: () => void;
  /** Open another job's tab (a sweep's trial). */
  openJob?: (id: string) => void;
}

/** The content of a job's tab. */
export class JobDetailWidget extends ReactWidget {
  constructor(service: MlwsService, id: string, actions: IJobActions) {
    super();
    this.state = new JobState(service, id);
    this._actions = actions;
    this.addClass('jp-mlws-job-detail');
    this.node.dataset.mlwsJobId = id;
    this._poll = new Poll({
      auto: false,
      factory: async () => {
        await this.state.tick();
        if (this.state.finished) {
          // Completed, failed or canceled and the whole log read: stop following.
          this._poll.dispose();
        }
      },
      frequency: { interval: FOLLOW_MS, backoff: true, max: 10 * FOLLOW_MS },
      name: `jupyter-mlws:job:${id}`,
      standby: () => !this.isVisible || 'when-hidden'
    });
    this.state.changed.connect(() => this.update());
  }

  readonly state: JobState;

  get jobId(): string {
    return this.state.id;
  }

  /** Fetch now (e.g. after an action). */
  refresh(): void {
    if (!this._poll.isDisposed) {
      void this._poll.refresh();
    } else {
      void this.state.tick().catch(() => undefined);
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (!this._poll.isDisposed) {
      void this._poll.start();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (!this._poll.isDisposed) {
      void this._poll.start().then(() => this._poll.refresh());
    }
  }

  async openOutput(): Promise<void> {
    await this.act('Opening…', async () => {
      const path = await this.state.service.outputNotebook(this.jobId);
      await this._actions.openPath(path);
    });
  }

  async cancel(): Promise<void> {
    await this.act('Canceling…', async () => {
      await this.state.service.cancelJob(this.jobId);
      this._actions.jobChanged?.();
      this.refresh();
    });
  }

  private async act(label: string, fn: () => Promise<void>): Promise<void> {
    this.state.busy = label;
    this.state.actionError = '';
    this.state.emit();
    try {
      await fn();
    } catch (error) {
      this.state.actionError = errorText(error);
    } finally {
      this.state.busy = '';
      this.state.emit();
    }
  }

  /** Open the tab of another job (a trial of this sweep). */
  openJob(id: string): void {
    this._actions.openJob?.(id);
  }

  render(): JSX.Element {
    return <JobView widget={this} />;
  }

  private _actions: IJobActions;
  private _poll: Poll;
}

/** Make the main-area tab of a job. */
export function createJobPanel(
  service: MlwsService,
  id: string,
  actions: IJobActions
): MainAreaWidget<JobDetailWidget> {
  const content = new JobDetailWidget(service, id, actions);
  const panel = new MainAreaWidget({ content });
  panel.id = `jp-mlws-job-${id}`;
  panel.addClass('jp-mlws-job-panel');
  panel.title.label = `Job ${id}`;
  panel.title.caption = `jupyter_mlws job ${id}`;
  panel.title.icon = runningIcon;
  panel.title.closable = true;
  content.state.changed.connect(() => {
    const job = content.state.job;
    if (job) {
      panel.title.label = `${job.display_name || 'Job'} · ${job.status}`;
      panel.title.caption = `${job.id} (${job.status})`;
    }
  });
  return panel;
}

function Field(props: { label: string; children: React.ReactNode }): JSX.Element | null {
  if (props.children === null || props.children === undefined || props.children === '') {
    return null;
  }
  return (
    <>
      <dt>{props.label}</dt>
      <dd>{props.children}</dd>
    </>
  );
}

function LogView(props: { text: string; follow: boolean }): JSX.Element {
  const ref = React.useRef<HTMLPreElement>(null);
  const stick = React.useRef(true);
  React.useLayoutEffect(() => {
    const el = ref.current;
    if (el && stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [props.text]);
  return (
    <pre
      className="jp-mlws-log"
      ref={ref}
      onScroll={e => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      }}
    >
      {props.text || (props.follow ? 'Waiting for output…' : '(no log output)')}
    </pre>
  );
}

function MetricsTable(props: { metrics: IMetric[] }): JSX.Element {
  const { metrics } = props;
  if (metrics.length === 0) {
    return <div className="jp-mlws-empty">No metrics logged.</div>;
  }
  const shown = metrics.slice(-500);
  return (
    <>
      {metrics.length > shown.length && (
        <div className="jp-mlws-muted">
          The last {shown.length} of {metrics.length} values.
        </div>
      )}
      <table className="jp-mlws-table jp-mlws-metrics">
        <thead>
          <tr>
            <th>key</th>
            <th>value</th>
            <th>step</th>
            <th>at</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((m, i) => (
            <tr key={i} data-mlws-metric={m.key}>
              <td>{m.key}</td>
              <td className="jp-mlws-num">{m.value}</td>
              <td className="jp-mlws-num">{m.step ?? ''}</td>
              <td title={when(m.at).title}>{when(m.at).text}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function JobView(props: { widget: JobDetailWidget }): JSX.Element {
  const { widget } = props;
  const { state } = widget;
  const job = state.job;
  if (!job) {
    return (
      <div className="jp-mlws-job-view">
        {state.error ? (
          <div className="jp-mlws-error">{state.error}</div>
        ) : (
          <div className="jp-mlws-loading">Loading job {widget.jobId}…</div>
        )}
      </div>
    );
  }
  const active = !isTerminal(job.status);
  const params = Object.entries(job.params ?? {});
  const progress = job.progress;
  return (
    <div className="jp-mlws-job-view">
      <div className="jp-mlws-job-head">
        <h2 className="jp-mlws-job-title">{job.display_name || job.id}</h2>
        <StatusLabel status={job.status} />
        {progress && progress.total ? (
          <span className="jp-mlws-muted jp-mlws-progress">
            cell {progress.executed ?? 0} of {progress.total}
          </span>
        ) : null}
        <span className="jp-mlws-spacer" />
        {job.type === 'notebook' && (
          <button
            className="jp-mod-styled jp-mod-accept jp-mlws-open-output"
            disabled={!!state.busy}
            onClick={() => void widget.openOutput()}
          >
            Open output notebook
          </button>
        )}
        {active && (
          <button
            className="jp-mod-styled jp-mod-warn jp-mlws-cancel"
            disabled={!!state.busy}
            onClick={() => void widget.cancel()}
          >
            Cancel
          </button>
        )}
      </div>
      {state.busy && <div className="jp-mlws-muted">{state.busy}</div>}
      {state.actionError && <div className="jp-mlws-error">{state.actionError}</div>}
      {state.error && <div className="jp-mlws-error">{state.error}</div>}
      {job.error && <div className="jp-mlws-error jp-mlws-job-error">{job.error}</div>}
      <dl className="jp-mlws-fields">
        <Field label="id">
          <code>{job.id}</code>
        </Field>
        <Field label="type">{job.type}</Field>
        <Field label="compute">{job.compute}</Field>
        <Field label="environment">{job.environment ?? "kernel's Python"}</Field>
        <Field label="image">{job.image}</Field>
        <Field label="experiment">{job.experiment}</Field>
        <Field label="submitted by">{job.created_by}</Field>
        <Field label="host">{job.host}</Field>
        <Field label="created">{when(job.created_at).title}</Field>
        <Field label="started">{when(job.started_at).title}</Field>
        <Field label="ended">{when(job.ended_at).title}</Field>
        <Field label="duration">{duration(job.duration_s)}</Field>
        <Field label="produced">
          {job.produced && job.produced.length ? job.produced.join(', ') : null}
        </Field>
      </dl>
      <div className="jp-mlws-job-grid">
        {job.sweep && <SweepPanel sweep={job.sweep} openJob={id => widget.openJob(id)} />}
        <div className="jp-mlws-block jp-mlws-log-block">
          <h3>
            Log
            {active && <span className="jp-mlws-muted"> (following)</span>}
          </h3>
          <LogView text={state.log} follow={!state.logDone} />
        </div>
        <div className="jp-mlws-block">
          <h3>Metrics</h3>
          <MetricsTable metrics={state.metrics} />
        </div>
        {params.length > 0 && (
          <div className="jp-mlws-block">
            <h3>Parameters</h3>
            <table className="jp-mlws-table jp-mlws-params">
              <tbody>
                {params.map(([k, v]) => (
                  <tr key={k}>
                    <td>{k}</td>
                    <td>
                      <code>{JSON.stringify(v)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <div className="jp-mlws-block">
          <h3>Events</h3>
          <ol className="jp-mlws-events">
            {(job.events ?? []).map((e, i) => (
              <li key={i} className="jp-mlws-event">
                {e.status && <StatusLabel status={e.status} />}
                <span className="jp-mlws-muted" title={when(e.at).title}>
                  {when(e.at).title}
                </span>
                {e.message && <span className="jp-mlws-event-message">{e.message}</span>}
              </li>
            ))}
          </ol>
        </div>
        {job.outputs && job.outputs.length > 0 && (
          <div className="jp-mlws-block">
            <h3>Outputs</h3>
            <pre className="jp-mlws-json">{JSON.stringify(job.outputs, null, 2)}</pre>
          </div>
        )}
      </div>
    </div>
  );
}
