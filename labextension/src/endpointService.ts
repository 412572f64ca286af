/**
 * The typed client of the online endpoint routes of the jupyter_mlws REST API
 * (`/endpoints/...` in `jupyter_mlws/server/openapi.yaml`). Keys never come back from these
 * routes: the server uses the endpoint's key itself when it invokes it.
 */
import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from './request';
import { ILogChunk } from './service';

/** `Deployment` */
export interface IDeployment {
  name: string;
  endpoint_name: string;
  state: 'Creating' | 'Succeeded' | 'Failed' | 'Deleting' | string;
  /** Failed: the init() traceback and the log's tail. */
  error?: string | null;
  generation?: number;
  model?: string | null;
  environment?: string | null;
  env_hash?: string | null;
  scoring_script?: string | null;
  instance_count: number;
  replicas_ready: number;
  restarts?: number;
  replicas?: Record<string, unknown>[];
  /** Percent of the endpoint's requests. */
  traffic: number;
  notes?: string[];
  created_at?: string | null;
  updated_at?: string | null;
}

/** `Endpoint` (never its keys). */
export interface IEndpoint {
  name: string;
  auth_mode: string;
  description?: string | null;
  scoring_uri: string;
  port: number;
  traffic: Record<string, number>;
  deployments: Record<string, string | null>;
  deployment_list?: IDeployment[];
  notes?: string[];
  created_at?: string | null;
}

/** `InvokeResult`: what the endpoint answered to a test request. */
export interface IInvokeResult {
  /** The endpoint's own HTTP status. */
  status: number;
  ok: boolean;
  /** The deployment that answered. */
  deployment?: string | null;
  latency_ms: number;
  body: string;
  json?: unknown;
  truncated: boolean;
}

/** The endpoint routes, typed. */
export class EndpointService {
  constructor(
    readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  private call<T>(segments: string[], method: string, body?: unknown, query?: any): Promise<T> {
    return requestAPI<T>(
      ['endpoints', ...segments],
      { method, body: body === undefined ? undefined : JSON.stringify(body) },
      query,
      this.settings
    );
  }

  /** GET /endpoints: every endpoint with its deployments. */
  async list(): Promise<IEndpoint[]> {
    return (await this.call<{ items: IEndpoint[] }>([], 'GET')).items;
  }

  /** GET /endpoints/{name} */
  get(name: string): Promise<IEndpoint> {
    return this.call([name], 'GET');
  }

  /** PUT /endpoints/{name}/traffic: must sum to 100 (or 0); else the server's 400. */
  setTraffic(name: string, traffic: Record<string, number>): Promise<IEndpoint> {
    return this.call([name, 'traffic'], 'PUT', { traffic });
  }

  /** POST /endpoints/{name}/invoke: a raw body text, optionally to one deployment. */
  invoke(name: string, requestText: string, deployment?: string): Promise<IInvokeResult> {
    return this.call([name, 'invoke'], 'POST', {
      request_text: requestText,
      deployment: deployment || null
    });
  }

  /** GET /endpoints/{name}/deployments/{deployment}/logs from a byte offset (or the tail). */
  logs(name: string, deployment: string, offset = 0, tail?: number): Promise<ILogChunk> {
    return this.call([name, 'deployments', deployment, 'logs'], 'GET', undefined, {
      offset,
      tail
    });
  }

  /** DELETE /endpoints/{name}/deployments/{deployment} (409 while it takes traffic). */
  deleteDeployment(name: string, deployment: string): Promise<{ deleted: string }> {
    return this.call([name, 'deployments', deployment], 'DELETE');
  }
}
