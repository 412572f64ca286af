/**
 * The "Endpoints" section of the ML Workspace panel: online endpoints with their deployments
 * (traffic, state, replicas, scoring URI), the traffic split, a log view that follows a
 * deployment's log by byte offset, and a "Test" box that sends a JSON body through the server
 * (which adds the endpoint's key) and shows the answer, the deployment that answered and the
 * latency.
 */
import { caretDownIcon, caretRightIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IDeployment, IEndpoint, EndpointService, IInvokeResult } from './endpointService';
import { ExpandRow } from './expandRow';
import { OutdatedBadge, outdatedReason } from './outdated';
import { IOutdatedEnvironment } from './service';
import { statusClass } from './format';
import { MlwsApiError } from './request';

/** How often the endpoint list is refreshed while the section is open and visible (ms). */
export const ENDPOINTS_POLL_MS = 2000;
/** How often a followed deployment log is asked for what came next (ms). */
export const ENDPOINT_LOG_POLL_MS = 1500;
/** Lines of log fetched when the log view opens (the rest is followed by offset). */
export const ENDPOINT_LOG_TAIL = 100;
/** The most log text kept in the view (characters). */
const LOG_MAX_CHARS = 200_000;
const BY_TRAFFIC = '';

function errorText(error: unknown): string {
  if (error instanceof MlwsApiError) {
    return error.display;
  }
  return (error as Error)?.message ?? String(error);
}

/** Polls `fn` every `ms` while `active()`; stops when the component goes away. */
function useInterval(fn: () => void, ms: number, deps: React.DependencyList): void {
  const saved = React.useRef(fn);
  saved.current = fn;
  React.useEffect(() => {
    const timer = setInterval(() => saved.current(), ms);
    return () => clearInterval(timer);
  }, deps);
}

/**
 * `run` made to run once at a time (a call while one runs does nothing); the error of the last
 * call (its text, or '' when it succeeded) is the second value.
 */
function useOneAtATime(run: () => Promise<void>): [() => Promise<void>, string] {
  const [error, setError] = React.useState('');
  const busy = React.useRef(false);
  const saved = React.useRef(run);
  saved.current = run;
  const call = React.useCallback(async () => {
    if (busy.current) {
      return;
    }
    busy.current = true;
    try {
      await saved.current();
      setError('');
    } catch (e) {
      setError(errorText(e));
    } finally {
      busy.current = false;
    }
  }, []);
  return [call, error];
}

/** The section: a list of endpoints, refreshed while open and while the panel is visible. */
export function EndpointsSection(props: {
  settings?: EndpointService['settings'];
  refreshTick: number;
  isVisible: () => boolean;
  /** Environments built on a base that moved: their deployments are marked. */
  outdated?: IOutdatedEnvironment[];
}): JSX.Element {
  const service = React.useMemo(() => new EndpointService(props.settings), [props.settings]);
  const [open, setOpen] = React.useState(true);
  const [endpoints, setEndpoints] = React.useState<IEndpoint[] | null>(null);
  const [load, error] = useOneAtATime(async () => setEndpoints(await service.list()));

  React.useEffect(() => {
    if (open) {
      void load();
    }
  }, [open, props.refreshTick]);
  useInterval(
    () => {
      if (open && props.isVisible()) {
        void load();
      }
    },
    ENDPOINTS_POLL_MS,
    [open]
  );

  const Caret = open ? caretDownIcon : caretRightIcon;
  return (
    <section className="jp-mlws-section jp-mlws-endpoints" data-mlws-kind="endpoints">
      <button
        className="jp-mlws-section-header"
        aria-expanded={open}
        data-mlws-section="endpoints"
        onClick={() => setOpen(!open)}
      >
        <Caret.react tag="span" className="jp-mlws-caret" />
        <span className="jp-mlws-section-title">Endpoints</span>
        {endpoints !== null && <span className="jp-mlws-count">{endpoints.length}</span>}
      </button>
      {open && (
        <div className="jp-mlws-section-body">
          {error && <div className="jp-mlws-error">{error}</div>}
          {endpoints !== null && endpoints.length === 0 && !error && (
            <div className="jp-mlws-empty">
              No endpoints yet. Deploy a model with %deploy or `mlws online-deployment create`.
            </div>
          )}
          {endpoints === null && !error && <div className="jp-mlws-loading">Loading…</div>}
          <ul className="jp-mlws-list">
            {(endpoints ?? []).map(ep => (
              <EndpointRow
                key={ep.name}
                service={service}
                endpoint={ep}
                reload={load}
                outdated={staleDeployments(props.outdated ?? [], ep.name)}
              />
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}

function trafficText(traffic: Record<string, number>): string {
  const parts = Object.entries(traffic)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v}%`);
  return parts.length ? parts.join(' · ') : 'no traffic';
}

/** Deployment name -> why its environment is outdated, for one endpoint. */
function staleDeployments(rows: IOutdatedEnvironment[], endpoint: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const row of rows) {
    for (const ref of row.deployments) {
      const [ep, name] = ref.split('/');
      if (ep === endpoint && name) {
        out.set(name, `${row.environment} is outdated: ${outdatedReason(row)}`);
      }
    }
  }
  return out;
}

/** One endpoint; expands to its deployments, the traffic split, the log and the test box. */
function EndpointRow(props: {
  service: EndpointService;
  endpoint: IEndpoint;
  reload: () => Promise<void>;
  outdated: Map<string, string>;
}): JSX.Element {
  const { service, endpoint } = props;
  const deployments = endpoint.deployment_list ?? [];
  const [open, setOpen] = React.useState(false);
  const [logOf, setLogOf] = React.useState<string | null>(null);
  const shownLog =
    logOf && deployments.some(d => d.name === logOf) ? logOf : deployments[0]?.name ?? null;
  const toggle = () => setOpen(!open);
  return (
    <li className="jp-mlws-endpoint" data-mlws-endpoint={endpoint.name}>
      <ExpandRow open={open} title={endpoint.scoring_uri} onToggle={toggle}>
        <span className="jp-mlws-asset-name">{endpoint.name}</span>
        {props.outdated.size > 0 && (
          <OutdatedBadge of={endpoint.name} title={[...props.outdated.values()].join('\n')} />
        )}
        <span className="jp-mlws-muted jp-mlws-right jp-mlws-endpoint-traffic">
          {trafficText(endpoint.traffic)}
        </span>
      </ExpandRow>
      {open && (
        <div className="jp-mlws-endpoint-body">
          <div className="jp-mlws-endpoint-uri">
            <span className="jp-mlws-muted">Scoring URI </span>
            <code data-mlws-scoring-uri={endpoint.scoring_uri}>{endpoint.scoring_uri}</code>
          </div>
          {deployments.length === 0 ? (
            <div className="jp-mlws-empty">No deployment yet.</div>
          ) : (
            <DeploymentsTable
              deployments={deployments}
              logOf={shownLog}
              onLog={setLogOf}
              outdated={props.outdated}
            />
          )}
          {deployments
            .filter(d => d.state === 'Failed' && d.error)
            .map(d => (
              <div
                key={d.name}
                className="jp-mlws-error jp-mlws-deployment-error"
                data-mlws-error-of={d.name}
              >
                {`${d.name} failed: ${d.error}`}
              </div>
            ))}
          {deployments.length > 1 && (
            <TrafficEditor
              service={service}
              endpoint={endpoint}
              deployments={deployments}
              reload={props.reload}
            />
          )}
          {shownLog && (
            <DeploymentLog
              key={shownLog}
              service={service}
              endpoint={endpoint.name}
              deployment={shownLog}
            />
          )}
          {deployments.length > 0 && (
            <TestBox service={service} endpoint={endpoint.name} deployments={deployments} />
          )}
        </div>
      )}
    </li>
  );
}

function DeploymentsTable(props: {
  deployments: IDeployment[];
  logOf: string | null;
  onLog: (name: string) => void;
  outdated: Map<string, string>;
}): JSX.Element {
  return (
    <table className="jp-mlws-versions-table jp-mlws-deployments">
      <thead>
        <tr>
          <th>deployment</th>
          <th>state</th>
          <th>replicas</th>
          <th>traffic</th>
        </tr>
      </thead>
      <tbody>
        {props.deployments.map(d => (
          <tr
            key={d.name}
            className={`jp-mlws-deployment${props.logOf === d.name ? ' jp-mlws-selected' : ''}`}
            data-mlws-deployment={d.name}
            title={[
              d.model ? `model ${d.model}` : '',
              d.environment ? `environment ${d.environment}` : "the server's interpreter",
              d.restarts ? `${d.restarts} restarts` : '',
              d.error ?? ''
            ]
              .filter(Boolean)
              .join('\n')}
            onClick={() => props.onLog(d.name)}
          >
            <td className="jp-mlws-deployment-name">
              {d.name}
              {props.outdated.has(d.name) && (
                <OutdatedBadge of={d.name} title={props.outdated.get(d.name)!} />
              )}
            </td>
            <td>
              <span
                className={`jp-mlws-status ${statusClass(d.state)}`}
                data-mlws-status={d.state}
              >
                {d.state}
              </span>
            </td>
            <td className="jp-mlws-replicas">
              {d.replicas_ready}/{d.instance_count}
            </td>
            <td className="jp-mlws-traffic">{d.traffic}%</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Percent inputs per deployment and "Set traffic"; the server refuses a bad split. */
function TrafficEditor(props: {
  service: EndpointService;
  endpoint: IEndpoint;
  deployments: IDeployment[];
  reload: () => Promise<void>;
}): JSX.Element {
  const initial = () =>
    Object.fromEntries(props.deployments.map(d => [d.name, String(d.traffic)]));
  const [values, setValues] = React.useState<Record<string, string>>(initial);
  const [error, setError] = React.useState('');
  const [saving, setSaving] = React.useState(false);
  const apply = async () => {
    setSaving(true);
    try {
      const split = Object.fromEntries(
        Object.entries(values).map(([k, v]) => [k, Number.parseInt(v || '0', 10)])
      );
      await props.service.setTraffic(props.endpoint.name, split);
      setError('');
      await props.reload();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setSaving(false);
    }
  };
  return (
    <div className="jp-mlws-traffic-editor">
      {props.deployments.map(d => (
        <label key={d.name} className="jp-mlws-traffic-input">
          {d.name}
          <input
            type="number"
            min={0}
            max={100}
            data-mlws-traffic-input={d.name}
            value={values[d.name] ?? '0'}
            onChange={e => setValues({ ...values, [d.name]: e.target.value })}
          />
          %
        </label>
      ))}
      <button className="jp-mlws-small-button" disabled={saving} onClick={() => void apply()}>
        Set traffic
      </button>
      {error && <div className="jp-mlws-error jp-mlws-traffic-error">{error}</div>}
    </div>
  );
}

/** A deployment's log: the tail, then what comes next, by byte offset. */
function DeploymentLog(props: {
  service: EndpointService;
  endpoint: string;
  deployment: string;
}): JSX.Element {
  const [text, setText] = React.useState('');
  const offset = React.useRef<number | null>(null);
  const ref = React.useRef<HTMLPreElement>(null);
  const stick = React.useRef(true);

  const [poll, error] = useOneAtATime(async () => {
    const chunk =
      offset.current === null
        ? await props.service.logs(props.endpoint, props.deployment, 0, ENDPOINT_LOG_TAIL)
        : await props.service.logs(props.endpoint, props.deployment, offset.current);
    offset.current = chunk.offset;
    if (chunk.text) {
      setText(prev => {
        const all = prev + chunk.text;
        return all.length > LOG_MAX_CHARS ? all.slice(all.length - LOG_MAX_CHARS) : all;
      });
    }
  });
  React.useEffect(() => {
    void poll();
  }, []);
  useInterval(() => void poll(), ENDPOINT_LOG_POLL_MS, []);
  React.useLayoutEffect(() => {
    const el = ref.current;
    if (el && stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [text]);

  return (
    <div className="jp-mlws-endpoint-block">
      <div className="jp-mlws-endpoint-block-title">
        Log of <code>{props.deployment}</code> <span className="jp-mlws-muted">(following)</span>
      </div>
      {error && <div className="jp-mlws-error">{error}</div>}
      <pre
        className="jp-mlws-log jp-mlws-endpoint-log"
        data-mlws-log-of={props.deployment}
        ref={ref}
        onScroll={e => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {text || 'Waiting for output…'}
      </pre>
    </div>
  );
}

/** A JSON body, a deployment (or the traffic split), "Send"; the answer with its latency. */
function TestBox(props: {
  service: EndpointService;
  endpoint: string;
  deployments: IDeployment[];
}): JSX.Element {
  const [body, setBody] = React.useState('{"data": [[1, 2, 3]]}');
  const [target, setTarget] = React.useState(BY_TRAFFIC);
  const [result, setResult] = React.useState<IInvokeResult | null>(null);
  const [error, setError] = React.useState('');
  const [sending, setSending] = React.useState(false);

  const send = async () => {
    try {
      JSON.parse(body);
    } catch (e) {
      setError(`The request is not JSON: ${(e as Error).message}`);
      setResult(null);
      return;
    }
    setSending(true);
    try {
      setResult(await props.service.invoke(props.endpoint, body, target || undefined));
      setError('');
    } catch (e) {
      setError(errorText(e));
      setResult(null);
    } finally {
      setSending(false);
    }
  };

  const shown =
    result === null
      ? ''
      : result.json !== undefined && result.json !== null
        ? JSON.stringify(result.json, null, 2)
        : result.body;
  return (
    <div className="jp-mlws-endpoint-block jp-mlws-test-box">
      <div className="jp-mlws-endpoint-block-title">Test</div>
      <textarea
        className="jp-mlws-test-body"
        aria-label="Request body (JSON)"
        rows={3}
        spellCheck={false}
        value={body}
        onChange={e => setBody(e.target.value)}
      />
      <div className="jp-mlws-test-actions">
        <select
          className="jp-mlws-test-target"
          aria-label="Deployment"
          value={target}
          onChange={e => setTarget(e.target.value)}
        >
          <option value={BY_TRAFFIC}>traffic split</option>
          {props.deployments.map(d => (
            <option key={d.name} value={d.name}>
              {d.name}
            </option>
          ))}
        </select>
        <button
          className="jp-mlws-small-button jp-mlws-test-send"
          disabled={sending}
          onClick={() => void send()}
        >
          {sending ? 'Sending…' : 'Send'}
        </button>
      </div>
      {error && <div className="jp-mlws-error jp-mlws-test-error">{error}</div>}
      {result && (
        <div className="jp-mlws-test-result" data-mlws-test-status={result.status}>
          <div className="jp-mlws-test-meta">
            <span className={`jp-mlws-status ${result.ok ? 'jp-mlws-status-succeeded' : 'jp-mlws-status-failed'}`}>
              {result.status}
            </span>
            <span>
              from <code className="jp-mlws-test-deployment">{result.deployment ?? '?'}</code>
            </span>
            <span className="jp-mlws-test-latency">{result.latency_ms.toFixed(1)} ms</span>
          </div>
          <pre className="jp-mlws-json jp-mlws-test-answer">{shown}</pre>
        </div>
      )}
    </div>
  );
}
