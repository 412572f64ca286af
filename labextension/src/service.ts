/**
 * The typed client of the jupyter_mlws REST API (`jupyter_mlws/server/openapi.yaml`).
 * The interfaces mirror the wire models one to one; `MlwsService` has one method per route.
 */
import { ServerConnection } from '@jupyterlab/services';

import { Query, requestAPI } from './request';

/** The asset kinds the registry serves. */
export type AssetKind =
  | 'environments'
  | 'models'
  | 'data'
  | 'components'
  | 'datastores'
  | 'computes';

/** `Error`: the body of every error answer. */
export interface IApiError {
  error: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

/** `WorkspaceInfo` */
export interface IWorkspaceInfo {
  path: string;
  store: string;
  artifacts: string;
  version: string;
  counts: Record<string, number>;
}

/** `Asset`: one registered version; kind-specific fields are optional. */
export interface IAsset {
  kind: string;
  name: string;
  version: string;
  description?: string | null;
  tags: Record<string, string>;
  archived: boolean;
  curated?: boolean;
  created_at: string;
  created_by?: string | null;
  /** The job that produced it (models, data). */
  job_id?: string | null;
  spec: Record<string, unknown>;
  /** Environments: the content hash and the image named after it. */
  hash?: string;
  image?: string;
  /** Environments: is its image (or venv) built already? */
  cached?: boolean;
  /** Models and data. */
  size?: number | null;
  sha256?: string;
  type?: string;
  [key: string]: unknown;
}

/** A page of any list answer. */
export interface IPage<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

/** `AssetPage` */
export type IAssetPage = IPage<IAsset>;

/** `Build` */
export interface IBuild {
  status: 'not_built' | 'building' | 'succeeded' | 'failed' | 'cached';
  env_hash: string;
  builder: 'docker' | 'venv';
  /** `name:version` that started the build. */
  environment?: string | null;
  result?: Record<string, unknown> | null;
  error?: string | null;
  /** The full log; while this server builds it, what was printed so far. */
  log?: string;
  started_at?: string | null;
  finished_at?: string | null;
}

/** `OutdatedEnvironment`: a version whose image was built on a base that has moved since. */
export interface IOutdatedEnvironment {
  /** `name:version` */
  environment: string;
  name: string;
  version: string;
  env_hash: string;
  base_image: string;
  built_on: string;
  base_now: string;
  /** When `mlws image patch` made the current base (ISO 8601); null for another move. */
  base_patched_at?: string | null;
  jobs: string[];
  models: string[];
  /** `endpoint/deployment` of every online deployment serving it. */
  deployments: string[];
}

/** `RebuildOperation` */
export interface IRebuildOperation {
  environment: string;
  redeploy: boolean;
  status: 'running' | 'succeeded' | 'failed';
  log: string;
  result?: { rebuilt: boolean; from_lock: boolean; redeployed: string[] } | null;
  error?: IApiError | null;
  started_at?: string;
  finished_at?: string | null;
}

/** The statuses of a job. */
export type JobStatus =
  | 'Queued'
  | 'Preparing'
  | 'Running'
  | 'Completed'
  | 'Failed'
  | 'Canceled';

/** The statuses after which nothing changes any more. */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set([
  'Completed',
  'Failed',
  'Canceled'
]);

/** Has this job ended? */
export function isTerminal(status: string): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** `Job` */
export interface IJob {
  id: string;
  type: 'notebook' | 'command' | 'pipeline' | 'sweep';
  display_name?: string | null;
  experiment?: string;
  status: JobStatus;
  parent_id?: string | null;
  step_name?: string | null;
  compute: string;
  environment?: string | null;
  image?: string | null;
  error?: string | null;
  created_at: string;
  started_at?: string | null;
  ended_at?: string | null;
  duration_s?: number | null;
  /** Who submitted it (through REST: the Jupyter user) and the machine that runs it. */
  created_by?: string | null;
  host?: string | null;
  [key: string]: unknown;
}

/** `JobPage` */
export type IJobPage = IPage<IJob>;

/** One entry of `JobDetail.events`. */
export interface IJobEvent {
  status?: string;
  at?: string;
  message?: string | null;
}

/** `JobDetail` */
export interface IJobDetail extends IJob {
  events?: IJobEvent[];
  params?: Record<string, unknown>;
  inputs?: Record<string, unknown>[];
  outputs?: Record<string, unknown>[];
  produced?: string[];
  progress?: { executed?: number; total?: number } | null;
  children?: string[];
  /** A sweep: its trials sorted by the objective and its best trial. */
  sweep?: ISweep;
}

/** `SweepTrial`: one trial of a sweep. */
export interface ISweepTrial {
  /** 0, 1, ... in the order the trials were drawn. */
  number: number;
  /** The trial's job (none until it is submitted). */
  job?: string | null;
  /** The values drawn for the swept parameters. */
  params: Record<string, unknown>;
  /** A job status, or 'Canceled (early termination)'. */
  status: string;
  /** The last value of the primary metric. */
  value?: number | null;
  duration_s?: number | null;
  reason?: string | null;
  carried_from?: string | null;
  /** Step -> value of the primary metric. */
  values?: Record<string, number | null>;
}

/** `Sweep`: the `sweep` field of a sweep job's detail. */
export interface ISweep {
  sweep: string;
  status: string;
  objective: { goal: 'maximize' | 'minimize'; primary_metric: string };
  budget?: number | null;
  stopped?: string | null;
  /** Why there is no best trial (e.g. no trial logged the metric). */
  problem?: string | null;
  best: ISweepTrial | null;
  /** Best first; trials without a value last. */
  trials: ISweepTrial[];
}

/** `NotebookSweepSubmission`: the body of POST /sweeps (the fields of `mlws job sweep`). */
export interface INotebookSweepSubmission {
  notebook: string;
  /**
   * Parameter -> search expression (`choice(1, 2)`, `uniform(0, 1)`, `loguniform(-4, 2)`...).
   * A refused one answers 400 with `details: {field: 'search', name}`.
   */
  search: Record<string, string>;
  /** Fixed values of the other parameters, as typed (the CLI's `-p`). */
  literal_parameters?: Record<string, string>;
  metric: string;
  goal?: 'maximize' | 'minimize';
  max_trials?: number;
  max_concurrent?: number | null;
  sampling?: 'random' | 'grid' | 'bayesian';
  seed?: number | null;
  early_termination?: 'bandit' | 'median' | 'truncation' | null;
  environment?: string | null;
  compute?: string | null;
  experiment?: string | null;
  display_name?: string | null;
}

/** `Metric` */
export interface IMetric {
  key: string;
  value: number;
  step?: number | null;
  at?: string;
}

/** `LogChunk` */
export interface ILogChunk {
  text: string;
  offset: number;
  done: boolean;
}

/** `NotebookSubmission`: the body of POST /jobs. */
export interface INotebookSubmission {
  notebook: string;
  /** Parameter values as JSON. */
  parameters?: Record<string, unknown>;
  /**
   * Parameters as typed (`"-0.5"`, `"[1, 2]"`, `"'text'"`), read by the server with the CLI's
   * parser; they win over `parameters`. A value it refuses answers 400 with
   * `details: {field: 'literal_parameters', name}`.
   */
  literal_parameters?: Record<string, string>;
  environment?: string | null;
  compute?: string | null;
  inputs?: Record<string, unknown>;
  /** Inputs as typed after the CLI's `-i NAME=`, read by the server's parser. */
  literal_inputs?: Record<string, string>;
  /** Names of the outputs (folders) the job writes. */
  outputs?: string[];
  experiment?: string | null;
  /** Seconds. */
  timeout?: number | null;
}

/** One parameter of a notebook's parameters cell (`default` is Python source text). */
export interface INotebookParameter {
  name: string;
  type?: string | null;
  default?: string | null;
  help?: string | null;
}

/** Paging of list calls. */
export interface IPaging {
  limit?: number;
  offset?: number;
}

/** Filters of `listAssets`. */
export interface IAssetQuery extends IPaging {
  /** Only names containing this text (case-insensitive, server-side). */
  q?: string;
  /** `key` or `key=value`; several must all match. */
  tag?: string | string[];
  include_archived?: boolean;
}

/** Filters of `listJobs`. */
export interface IJobQuery extends IPaging {
  /** One status or several, comma-separated. */
  status?: string;
  experiment?: string;
  parent?: string;
  /** Only this user's jobs; `me` is the Jupyter user of this session. */
  created_by?: string;
}

/** The REST API of jupyter_mlws, typed. */
export class MlwsService {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  private get<T>(segments: string[], query?: Query): Promise<T> {
    return requestAPI<T>(segments, { method: 'GET' }, query, this.settings);
  }

  private post<T>(segments: string[], body?: unknown, query?: Query): Promise<T> {
    return requestAPI<T>(
      segments,
      { method: 'POST', body: body === undefined ? undefined : JSON.stringify(body) },
      query,
      this.settings
    );
  }

  /** GET /workspace */
  workspace(): Promise<IWorkspaceInfo> {
    return this.get(['workspace']);
  }

  /** GET /assets/{kind}: the latest version of each name, names sorted, paged. */
  listAssets(kind: AssetKind, query: IAssetQuery = {}): Promise<IAssetPage> {
    return this.get(['assets', kind], { ...query });
  }

  /** GET /assets/{kind}/{name}/versions: newest first, paged. */
  listVersions(
    kind: AssetKind,
    name: string,
    query: IPaging & { include_archived?: boolean } = {}
  ): Promise<IAssetPage> {
    return this.get(['assets', kind, name, 'versions'], { ...query });
  }

  /** GET /assets/{kind}/{name}/versions/{version} (`latest` works). */
  getVersion(kind: AssetKind, name: string, version: string): Promise<IAsset> {
    return this.get(['assets', kind, name, 'versions', version]);
  }

  /** PATCH /assets/{kind}/{name}/versions/{version} */
  updateVersion(
    kind: AssetKind,
    name: string,
    version: string,
    change: { description?: string; tags?: Record<string, string>; remove_tags?: string[] }
  ): Promise<IAsset> {
    return requestAPI(
      ['assets', kind, name, 'versions', version],
      { method: 'PATCH', body: JSON.stringify(change) },
      undefined,
      this.settings
    );
  }

  /** POST /assets/{kind}/{name}/versions/{version}/archive */
  archiveVersion(kind: AssetKind, name: string, version: string): Promise<IAsset> {
    return this.post(['assets', kind, name, 'versions', version, 'archive']);
  }

  /** POST /assets/{kind}/{name}/versions/{version}/restore */
  restoreVersion(kind: AssetKind, name: string, version: string): Promise<IAsset> {
    return this.post(['assets', kind, name, 'versions', version, 'restore']);
  }

  /** GET /environments/{name}/versions/{version}/build */
  getBuild(name: string, version: string, builder?: 'docker' | 'venv'): Promise<IBuild> {
    return this.get(['environments', name, 'versions', version, 'build'], { builder });
  }

  /** POST /environments/{name}/versions/{version}/build */
  startBuild(name: string, version: string, builder?: 'docker' | 'venv'): Promise<IBuild> {
    return this.post(['environments', name, 'versions', version, 'build'], undefined, {
      builder
    });
  }

  /** GET /environments/outdated: versions built on a base that moved, with their users. */
  async outdatedEnvironments(): Promise<IOutdatedEnvironment[]> {
    const answer = await this.get<{ items: IOutdatedEnvironment[] }>([
      'environments',
      'outdated'
    ]);
    return answer.items;
  }

  /** POST /environments/{name}/versions/{version}/rebuild (in the background). */
  startRebuild(name: string, version: string, redeploy = false): Promise<IRebuildOperation> {
    return this.post(['environments', name, 'versions', version, 'rebuild'], undefined, {
      redeploy
    });
  }

  /** GET /environments/{name}/versions/{version}/rebuild: the rebuild this server started. */
  getRebuild(name: string, version: string): Promise<IRebuildOperation> {
    return this.get(['environments', name, 'versions', version, 'rebuild']);
  }

  /** GET /jobs: newest first, paged. */
  listJobs(query: IJobQuery = {}): Promise<IJobPage> {
    return this.get(['jobs'], { ...query });
  }

  /** POST /jobs: submit a notebook (path relative to the server root). */
  submitNotebook(submission: INotebookSubmission): Promise<IJob> {
    return this.post(['jobs'], submission);
  }

  /** POST /sweeps: run a notebook over a search space; returns the sweep job. */
  submitSweep(submission: INotebookSweepSubmission): Promise<IJob> {
    return this.post(['sweeps'], submission);
  }

  /** GET /jobs/{id} (a sweep's carries its trials: `sweep`) */
  getJob(id: string): Promise<IJobDetail> {
    return this.get(['jobs', id]);
  }

  /** GET /jobs/{id}/logs from a byte offset (or only the last `tail` lines). */
  getLogs(id: string, offset = 0, tail?: number): Promise<ILogChunk> {
    return this.get(['jobs', id, 'logs'], { offset, tail });
  }

  /** GET /jobs/{id}/metrics */
  async getMetrics(id: string): Promise<IMetric[]> {
    const answer = await this.get<{ items: IMetric[] }>(['jobs', id, 'metrics']);
    return answer.items;
  }

  /** POST /jobs/{id}/cancel */
  cancelJob(id: string): Promise<IJob> {
    return this.post(['jobs', id, 'cancel']);
  }

  /** POST /jobs/{id}/output-notebook: copy it under the server root; returns its path. */
  async outputNotebook(id: string): Promise<string> {
    const answer = await this.post<{ path: string }>(['jobs', id, 'output-notebook']);
    return answer.path;
  }

  /** GET /notebooks/parameters?path= */
  async notebookParameters(path: string): Promise<INotebookParameter[]> {
    const answer = await this.get<{ parameters: INotebookParameter[] }>(
      ['notebooks', 'parameters'],
      { path }
    );
    return answer.parameters;
  }
}
