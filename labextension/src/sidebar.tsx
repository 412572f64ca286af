/**
 * The "ML Workspace" panel of the left area: Models, Data, Environments, Components, Jobs and
 * Endpoints (see endpoints.tsx).
 *
 * Lists are paged on the server (`limit`/`offset`) and filtered there (`q`), so a workspace with
 * tens of thousands of versions opens as fast as an empty one: only the first page of names is
 * fetched, and the versions of a name only when it is expanded.
 */
import {
  buildIcon,
  caretDownIcon,
  caretRightIcon,
  refreshIcon,
  ReactWidget,
  searchIcon
} from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { EndpointsSection } from './endpoints';
import { ExpandRow } from './expandRow';
import { OutdatedBadge, OutdatedNote, outdatedReason, useOutdated } from './outdated';
import { bytes, duration, shortHash, statusClass, when } from './format';
import { MlwsApiError } from './request';
import {
  AssetKind,
  IAsset,
  IJob,
  IOutdatedEnvironment,
  isTerminal,
  IWorkspaceInfo,
  MlwsService
} from './service';

/** Names fetched per page. */
export const NAMES_PAGE = 50;
/** Versions fetched per page when a name is expanded. */
export const VERSIONS_PAGE = 20;
/** Jobs fetched per page. */
export const JOBS_PAGE = 25;
/** How often the job list is refreshed while the panel is visible (ms). */
export const JOBS_POLL_MS = 2000;
/** Where the "Mine" toggle of the Jobs section is remembered for the browser session. */
export const MINE_KEY = 'jupyter-mlws:jobs-mine';

function loadMine(): boolean {
  try {
    return window.sessionStorage.getItem(MINE_KEY) === '1';
  } catch {
    return false;
  }
}

function errorText(error: unknown): string {
  if (error instanceof MlwsApiError) {
    return error.display;
  }
  return (error as Error)?.message ?? String(error);
}

/**
 * The job list shared by the panel and the Run-as-job command: a page of the newest jobs,
 * refreshed by a poll while the panel is visible.
 */
export class JobsModel {
  constructor(private readonly service: MlwsService) {}

  get jobs(): readonly IJob[] {
    return this._jobs;
  }
  get total(): number {
    return this._total;
  }
  get error(): string {
    return this._error;
  }
  get loading(): boolean {
    return this._loading;
  }
  /** The job to draw attention to (just submitted, or revealed). */
  get highlighted(): string | null {
    return this._highlighted;
  }
  /** Emitted whenever anything above changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Only the jobs of the Jupyter user of this session (remembered for the session). */
  get mine(): boolean {
    return this._mine;
  }

  /** Switch the "Mine" filter and list again from the first page. */
  async setMine(mine: boolean): Promise<void> {
    if (mine === this._mine) {
      return;
    }
    this._mine = mine;
    try {
      window.sessionStorage.setItem(MINE_KEY, mine ? '1' : '0');
    } catch {
      // storage unavailable (private mode): the toggle still works for this page
    }
    this._jobs = [];
    this._total = 0;
    this._changed.emit();
    await this.refresh();
  }

  private get _filter(): { created_by?: string } {
    return this._mine ? { created_by: 'me' } : {};
  }

  /** Fetch the first `max(loaded, JOBS_PAGE)` jobs again (newest first). */
  async refresh(): Promise<void> {
    const limit = Math.min(500, Math.max(JOBS_PAGE, this._jobs.length));
    this._loading = true;
    try {
      const mine = this._mine;
      const page = await this.service.listJobs({ limit, offset: 0, ...this._filter });
      if (mine !== this._mine) {
        this._loading = false;
        return; // the filter changed while this page was on its way
      }
      // Keep jobs beyond the refreshed window (loaded with "Load more").
      const rest = this._jobs.slice(limit).filter(j => !page.items.some(i => i.id === j.id));
      this._jobs = [...page.items, ...rest];
      this._total = page.total;
      this._error = '';
    } catch (error) {
      this._error = errorText(error);
      this._loading = false;
      this._changed.emit();
      throw error;
    }
    this._loading = false;
    this._changed.emit();
  }

  /** Fetch the next page. */
  async loadMore(): Promise<void> {
    try {
      const page = await this.service.listJobs({
        limit: JOBS_PAGE,
        offset: this._jobs.length,
        ...this._filter
      });
      const known = new Set(this._jobs.map(j => j.id));
      this._jobs = [...this._jobs, ...page.items.filter(j => !known.has(j.id))];
      this._total = page.total;
      this._error = '';
    } catch (error) {
      this._error = errorText(error);
    }
    this._changed.emit();
  }

  /** Put a job (just submitted) at the top and highlight it. */
  upsert(job: IJob, highlight = false): void {
    const index = this._jobs.findIndex(j => j.id === job.id);
    if (index >= 0) {
      this._jobs = [...this._jobs];
      this._jobs[index] = job;
    } else {
      this._jobs = [job, ...this._jobs];
      this._total += 1;
    }
    if (highlight) {
      this._highlighted = job.id;
    }
    this._changed.emit();
  }

  /** Are any of the loaded jobs still active? */
  get anyActive(): boolean {
    return this._jobs.some(j => !isTerminal(j.status));
  }

  private _mine = loadMine();
  private _jobs: IJob[] = [];
  private _total = 0;
  private _error = '';
  private _loading = false;
  private _highlighted: string | null = null;
  private _changed = new Signal<this, void>(this);
}

/** What the panel needs from the application. */
export interface ISidebarOptions {
  service: MlwsService;
  /** Open the detail view of a job. */
  openJob: (id: string) => void;
}

/** The left-area panel. */
export class MlwsSidebar extends ReactWidget {
  constructor(options: ISidebarOptions) {
    super();
    this.service = options.service;
    this._openJob = options.openJob;
    this.jobs = new JobsModel(this.service);
    this.id = 'jp-mlws-sidebar';
    this.addClass('jp-mlws-sidebar');
    this.title.icon = buildIcon;
    this.title.caption = 'ML Workspace';
    this._poll = new Poll({
      auto: false,
      factory: () => this.jobs.refresh(),
      frequency: { interval: JOBS_POLL_MS, backoff: false, max: JOBS_POLL_MS },
      name: 'jupyter-mlws:jobs',
      standby: () => !this.isVisible || 'when-hidden'
    });
  }

  readonly service: MlwsService;
  readonly jobs: JobsModel;

  /** Emitted when the user asks for a refresh (the asset sections reload). */
  get refreshed(): ISignal<this, void> {
    return this._refreshed;
  }

  /** Reload every section now. */
  refresh(): void {
    this._refreshed.emit();
    void this.jobs.refresh().catch(() => undefined);
  }

  /** Show a job (e.g. just submitted) at the top of the Jobs section, highlighted. */
  revealJob(job: IJob): void {
    this.jobs.upsert(job, true);
    this._revealed.emit(job.id);
    void this._poll.refresh();
  }

  /** Emitted with the id of a job to scroll to. */
  get revealed(): ISignal<this, string> {
    return this._revealed;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._shown();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this._shown();
    }
  }

  /** Rendered (and fetching) only once first shown: a closed panel costs nothing. */
  private _shown(): void {
    if (!this._everShown) {
      this._everShown = true;
      this.update();
    }
    // Fetch the jobs now rather than at the next tick, then keep polling while visible.
    if (!this._poll.isDisposed) {
      void this._poll.start().then(() => this._poll.refresh());
    }
  }

  render(): JSX.Element | null {
    if (!this._everShown) {
      return null;
    }
    return <SidebarView sidebar={this} openJob={this._openJob} />;
  }

  private _openJob: (id: string) => void;
  private _everShown = false;
  private _poll: Poll;
  private _refreshed = new Signal<this, void>(this);
  private _revealed = new Signal<this, string>(this);
}

/** Re-render a component when a Lumino signal fires. */
function useSignal<T>(signal: ISignal<T, any> | null, callback?: (v: any) => void): number {
  const [tick, setTick] = React.useState(0);
  React.useEffect(() => {
    if (!signal) {
      return;
    }
    const slot = (_: T, value: any) => {
      setTick(t => t + 1);
      callback?.(value);
    };
    signal.connect(slot);
    return () => {
      signal.disconnect(slot);
    };
  }, [signal]);
  return tick;
}

const SECTIONS: { kind: AssetKind; title: string }[] = [
  { kind: 'models', title: 'Models' },
  { kind: 'data', title: 'Data' },
  { kind: 'environments', title: 'Environments' },
  { kind: 'components', title: 'Components' }
];

/** `WorkspaceInfo.counts` is keyed by the singular kind. */
const COUNT_KEYS: Record<string, string> = {
  models: 'model',
  data: 'data',
  environments: 'environment',
  components: 'component'
};

function SidebarView(props: {
  sidebar: MlwsSidebar;
  openJob: (id: string) => void;
}): JSX.Element {
  const { sidebar } = props;
  const [text, setText] = React.useState('');
  const [query, setQuery] = React.useState('');
  const [info, setInfo] = React.useState<IWorkspaceInfo | null>(null);
  const [infoError, setInfoError] = React.useState('');
  const refreshTick = useSignal(sidebar.refreshed);
  const outdated = useOutdated(sidebar.service, refreshTick);

  React.useEffect(() => {
    const timer = setTimeout(() => setQuery(text.trim()), 250);
    return () => clearTimeout(timer);
  }, [text]);

  React.useEffect(() => {
    sidebar.service
      .workspace()
      .then(value => {
        setInfo(value);
        setInfoError('');
      })
      .catch(error => setInfoError(errorText(error)));
  }, [refreshTick]);

  return (
    <div className="jp-mlws-panel">
      <div className="jp-mlws-header">
        <div className="jp-mlws-title" title={info ? info.path : ''}>
          ML Workspace
        </div>
        <button
          className="jp-mlws-icon-button jp-mlws-refresh"
          title="Refresh"
          aria-label="Refresh"
          onClick={() => sidebar.refresh()}
        >
          <refreshIcon.react tag="span" elementPosition="center" />
        </button>
      </div>
      {info && (
        <div className="jp-mlws-workspace-path" title={info.path}>
          <bdi>{info.path}</bdi>
        </div>
      )}
      {infoError && <div className="jp-mlws-error">{infoError}</div>}
      <div className="jp-mlws-search">
        <searchIcon.react tag="span" className="jp-mlws-search-icon" />
        <input
          className="jp-mlws-search-input"
          type="search"
          placeholder="Filter names"
          aria-label="Filter asset names"
          value={text}
          onChange={e => setText(e.target.value)}
        />
      </div>
      <div className="jp-mlws-sections">
        {SECTIONS.map(s => (
          <AssetSection
            key={s.kind}
            service={sidebar.service}
            kind={s.kind}
            title={s.title}
            query={query}
            refreshTick={refreshTick}
            count={info?.counts?.[s.kind] ?? info?.counts?.[COUNT_KEYS[s.kind]]}
            openJob={props.openJob}
            outdated={s.kind === 'environments' ? outdated : undefined}
          />
        ))}
        <JobsSection sidebar={sidebar} openJob={props.openJob} />
        <EndpointsSection
          settings={sidebar.service.settings}
          refreshTick={refreshTick}
          isVisible={() => sidebar.isVisible}
          outdated={outdated.items}
        />
      </div>
    </div>
  );
}

function SectionHeader(props: {
  title: string;
  open: boolean;
  onToggle: () => void;
  total?: number | null;
  kind: string;
}): JSX.Element {
  const Caret = props.open ? caretDownIcon : caretRightIcon;
  return (
    <button
      className="jp-mlws-section-header"
      aria-expanded={props.open}
      data-mlws-section={props.kind}
      onClick={props.onToggle}
    >
      <Caret.react tag="span" className="jp-mlws-caret" />
      <span className="jp-mlws-section-title">{props.title}</span>
      {props.total !== undefined && props.total !== null && (
        <span className="jp-mlws-count">{props.total}</span>
      )}
    </button>
  );
}

/** One asset kind: a page of names (latest version each), "Load more" for the next. */
function AssetSection(props: {
  service: MlwsService;
  kind: AssetKind;
  title: string;
  query: string;
  refreshTick: number;
  count?: number;
  openJob: (id: string) => void;
  /** Environments: the outdated versions and how to fetch them again. */
  outdated?: { items: IOutdatedEnvironment[]; reload: () => void };
}): JSX.Element {
  const { service, kind, query } = props;
  const [open, setOpen] = React.useState(true);
  const [items, setItems] = React.useState<IAsset[]>([]);
  const [total, setTotal] = React.useState<number | null>(null);
  const [loading, setLoading] = React.useState(false);
  const [error, setError] = React.useState('');
  const generation = React.useRef(0);

  const load = async (offset: number) => {
    const gen = offset === 0 ? ++generation.current : generation.current;
    setLoading(true);
    try {
      const page = await service.listAssets(kind, {
        q: query || undefined,
        limit: NAMES_PAGE,
        offset
      });
      if (gen !== generation.current) {
        return; // a newer query superseded this one
      }
      setItems(prev => (offset === 0 ? page.items : [...prev, ...page.items]));
      setTotal(page.total);
      setError('');
    } catch (e) {
      if (gen === generation.current) {
        setError(errorText(e));
      }
    } finally {
      if (gen === generation.current) {
        setLoading(false);
      }
    }
  };

  React.useEffect(() => {
    if (open) {
      void load(0);
    }
  }, [query, props.refreshTick, open]);

  return (
    <section className="jp-mlws-section" data-mlws-kind={kind}>
      <SectionHeader
        title={props.title}
        kind={kind}
        open={open}
        onToggle={() => setOpen(!open)}
        total={total ?? props.count}
      />
      {open && (
        <div className="jp-mlws-section-body">
          {error && <div className="jp-mlws-error">{error}</div>}
          {!error && !loading && items.length === 0 && (
            <div className="jp-mlws-empty">
              {query ? `No ${props.title.toLowerCase()} match “${query}”.` : 'None yet.'}
            </div>
          )}
          <ul className="jp-mlws-list">
            {items.map(a => (
              <AssetRow
                key={a.name}
                service={service}
                kind={kind}
                asset={a}
                refreshTick={props.refreshTick}
                openJob={props.openJob}
                outdated={props.outdated}
              />
            ))}
          </ul>
          {total !== null && items.length < total && (
            <button
              className="jp-mlws-load-more"
              disabled={loading}
              onClick={() => void load(items.length)}
            >
              {loading ? 'Loading…' : `Load more (${items.length} of ${total})`}
            </button>
          )}
          {loading && items.length === 0 && <div className="jp-mlws-loading">Loading…</div>}
        </div>
      )}
    </section>
  );
}

/** A name; expands to its versions (newest first, paged). */
function AssetRow(props: {
  service: MlwsService;
  kind: AssetKind;
  asset: IAsset;
  refreshTick: number;
  openJob: (id: string) => void;
  outdated?: { items: IOutdatedEnvironment[]; reload: () => void };
}): JSX.Element {
  const { service, kind, asset } = props;
  const stale = (props.outdated?.items ?? []).filter(r => r.name === asset.name);
  const [open, setOpen] = React.useState(false);
  const [versions, setVersions] = React.useState<IAsset[]>([]);
  const [total, setTotal] = React.useState<number | null>(null);
  const [loading, setLoading] = React.useState(false);
  const [error, setError] = React.useState('');

  const load = async (offset: number) => {
    setLoading(true);
    try {
      const page = await service.listVersions(kind, asset.name, {
        limit: VERSIONS_PAGE,
        offset
      });
      setVersions(prev => (offset === 0 ? page.items : [...prev, ...page.items]));
      setTotal(page.total);
      setError('');
    } catch (e) {
      setError(errorText(e));
    } finally {
      setLoading(false);
    }
  };

  const first = React.useRef(true);
  React.useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    // A refresh: reload the versions shown, or forget them until the next expand.
    if (open) {
      void load(0);
    } else {
      setTotal(null);
    }
  }, [props.refreshTick, asset.version]);

  const toggle = () => {
    if (!open && total === null) {
      void load(0);
    }
    setOpen(!open);
  };
  const created = when(asset.created_at);

  return (
    <li className="jp-mlws-asset" data-mlws-name={asset.name}>
      <ExpandRow
        open={open}
        title={asset.description || `${asset.name}:${asset.version}`}
        onToggle={toggle}
      >
        <span className="jp-mlws-asset-name">{asset.name}</span>
        <span className="jp-mlws-badge" title="latest version">
          {asset.version}
        </span>
        {stale.length > 0 && (
          <OutdatedBadge
            of={asset.name}
            title={stale.map(r => `${r.environment}: ${outdatedReason(r)}`).join('\n')}
          />
        )}
        <span className="jp-mlws-muted jp-mlws-right" title={created.title}>
          {created.text}
        </span>
      </ExpandRow>
      {props.outdated && (
        <OutdatedNote service={service} rows={stale} onDone={props.outdated.reload} />
      )}
      {open && (
        <div className="jp-mlws-versions">
          {error && <div className="jp-mlws-error">{error}</div>}
          {versions.length > 0 && (
            <table className="jp-mlws-versions-table">
              <tbody>
                {versions.map(v => (
                  <VersionRow
                    key={v.version}
                    kind={kind}
                    version={v}
                    openJob={props.openJob}
                  />
                ))}
              </tbody>
            </table>
          )}
          {total !== null && versions.length < total && (
            <button
              className="jp-mlws-load-more"
              disabled={loading}
              onClick={() => void load(versions.length)}
            >
              {loading ? 'Loading…' : `Load more (${versions.length} of ${total})`}
            </button>
          )}
          {loading && versions.length === 0 && (
            <div className="jp-mlws-loading">Loading…</div>
          )}
        </div>
      )}
    </li>
  );
}

function Tags(props: { tags: Record<string, string> }): JSX.Element | null {
  const entries = Object.entries(props.tags ?? {});
  if (entries.length === 0) {
    return null;
  }
  return (
    <span className="jp-mlws-tags">
      {entries.map(([k, v]) => (
        <span key={k} className="jp-mlws-tag" title={`${k}=${v}`}>
          {v ? `${k}=${v}` : k}
        </span>
      ))}
    </span>
  );
}

function VersionRow(props: {
  kind: AssetKind;
  version: IAsset;
  openJob: (id: string) => void;
}): JSX.Element {
  const { kind, version: v } = props;
  const created = when(v.created_at);
  return (
    <tr className="jp-mlws-version" data-mlws-version={v.version}>
      <td className="jp-mlws-version-id">
        <span className="jp-mlws-badge">{v.version}</span>
      </td>
      <td className="jp-mlws-version-info">
        <div className="jp-mlws-version-line">
          <span className="jp-mlws-muted" title={created.title}>
            {created.text}
          </span>
          {v.size !== undefined && v.size !== null && (
            <span className="jp-mlws-size">{bytes(v.size)}</span>
          )}
          {kind === 'environments' && v.hash && (
            <span className="jp-mlws-hash" title={v.hash}>
              {shortHash(v.hash)}
            </span>
          )}
          {kind === 'environments' && v.cached !== undefined && (
            <span
              className={`jp-mlws-build ${v.cached ? 'jp-mlws-built' : 'jp-mlws-not-built'}`}
              title={v.image ?? ''}
            >
              {v.cached ? 'cached' : 'not built'}
            </span>
          )}
          {v.archived && <span className="jp-mlws-tag">archived</span>}
        </div>
        <Tags tags={v.tags} />
        {v.job_id && (
          <div className="jp-mlws-version-line">
            <span className="jp-mlws-muted">from job </span>
            <a
              className="jp-mlws-job-link"
              href="#"
              data-mlws-job-link={v.job_id}
              onClick={e => {
                e.preventDefault();
                props.openJob(v.job_id!);
              }}
            >
              {v.job_id}
            </a>
          </div>
        )}
      </td>
    </tr>
  );
}

/** The newest jobs with their live status (polled while the panel is visible). */
function JobsSection(props: {
  sidebar: MlwsSidebar;
  openJob: (id: string) => void;
}): JSX.Element {
  const { sidebar } = props;
  const model = sidebar.jobs;
  const [open, setOpen] = React.useState(true);
  const listRef = React.useRef<HTMLUListElement>(null);
  useSignal(model.changed);
  useSignal(sidebar.revealed, (id: string) => {
    setOpen(true);
    requestAnimationFrame(() => {
      const el = listRef.current?.querySelector(`[data-mlws-job-id="${CSS.escape(id)}"]`);
      el?.scrollIntoView({ block: 'nearest' });
    });
  });

  const jobs = model.jobs;
  return (
    <section className="jp-mlws-section jp-mlws-jobs" data-mlws-kind="jobs">
      <SectionHeader
        title="Jobs"
        kind="jobs"
        open={open}
        onToggle={() => setOpen(!open)}
        total={model.total}
      />
      {open && (
        <div className="jp-mlws-section-body">
          <label
            className="jp-mlws-mine"
            title="Only the jobs you submitted (as the Jupyter user of this session)"
          >
            <input
              type="checkbox"
              className="jp-mlws-mine-toggle"
              checked={model.mine}
              onChange={e => void model.setMine(e.currentTarget.checked).catch(() => undefined)}
            />
            Mine
          </label>
          {model.error && <div className="jp-mlws-error">{model.error}</div>}
          {!model.error && jobs.length === 0 && (
            <div className="jp-mlws-empty">
              {model.mine
                ? 'No jobs of yours. Turn off “Mine” to see everyone’s.'
                : 'No jobs yet. Use “Run as job…” on a notebook.'}
            </div>
          )}
          <ul className="jp-mlws-list" ref={listRef}>
            {jobs.map(job => (
              <JobRow
                key={job.id}
                job={job}
                highlighted={job.id === model.highlighted}
                onOpen={() => props.openJob(job.id)}
              />
            ))}
          </ul>
          {jobs.length < model.total && (
            <button className="jp-mlws-load-more" onClick={() => void model.loadMore()}>
              {`Load more (${jobs.length} of ${model.total})`}
            </button>
          )}
        </div>
      )}
    </section>
  );
}

/** A job's status as a small coloured label. */
export function StatusLabel(props: { status: string }): JSX.Element {
  return (
    <span
      className={`jp-mlws-status ${statusClass(props.status)}`}
      data-mlws-status={props.status}
    >
      {props.status}
    </span>
  );
}

/** "by USER on HOST" (a line of a job's tooltip), or nothing when neither is known. */
export function creatorText(job: IJob): string {
  const by = job.created_by ? ` by ${job.created_by}` : '';
  const on = job.host ? ` on ${job.host}` : '';
  return by || on ? `\nsubmitted${by}${on}` : '';
}

function JobRow(props: { job: IJob; highlighted: boolean; onOpen: () => void }): JSX.Element {
  const { job } = props;
  const created = when(job.created_at);
  const name = job.display_name || job.id;
  return (
    <li
      className={`jp-mlws-job${props.highlighted ? ' jp-mlws-highlighted' : ''}`}
      data-mlws-job-id={job.id}
      data-mlws-created-by={job.created_by ?? ''}
    >
      <div
        className="jp-mlws-job-row"
        role="button"
        tabIndex={0}
        title={`${job.id}\n${job.type} on ${job.compute}${
          job.environment ? ` with ${job.environment}` : ''
        }${creatorText(job)}${job.error ? `\n${job.error}` : ''}`}
        onClick={props.onOpen}
        onKeyDown={e => {
          if (e.key === 'Enter') {
            props.onOpen();
          }
        }}
      >
        <StatusLabel status={job.status} />
        <span className="jp-mlws-job-name">{name}</span>
        <span className="jp-mlws-muted jp-mlws-right" title={created.title}>
          {job.duration_s !== undefined && job.duration_s !== null
            ? duration(job.duration_s)
            : created.text}
        </span>
      </div>
    </li>
  );
}
