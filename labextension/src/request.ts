/**
 * The one request helper of the extension: every call to the jupyter_mlws REST API goes
 * through `requestAPI`, which adds Jupyter's authentication (token, XSRF) via
 * `ServerConnection.makeRequest` and turns the server's JSON error bodies into `MlwsApiError`s
 * whose message is the server's `message` (and whose `hint` says how to fix it).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The route prefix of the REST API under the server's base URL. */
export const API_NAMESPACE = 'mlws/api';

/** Query values; `undefined` and `null` entries are left out of the URL. */
export type Query = Record<
  string,
  string | number | boolean | string[] | undefined | null
>;

/** An error answered by the server (or the network), with the server's message and hint. */
export class MlwsApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string = 'error',
    readonly hint?: string,
    readonly details?: Record<string, unknown>
  ) {
    super(message);
    this.name = 'MlwsApiError';
  }

  /** The message followed by the hint, for notifications and inline errors. */
  get display(): string {
    return this.hint ? `${this.message} ${this.hint}` : this.message;
  }
}

/** The URL of an API path (segments are URL-encoded) with an optional query string. */
export function apiUrl(
  settings: ServerConnection.ISettings,
  segments: string[],
  query?: Query
): string {
  const path = URLExt.join(
    settings.baseUrl,
    API_NAMESPACE,
    ...segments.map(s => encodeURIComponent(s))
  );
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null && item !== '') {
        params.append(key, String(item));
      }
    }
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/**
 * Call the REST API and parse its JSON answer.
 *
 * @param segments - path segments after `mlws/api/`, e.g. `['assets', 'models']`
 * @param init - fetch options (method, body...)
 * @param query - query parameters
 * @param settings - server settings (defaults to the page's)
 */
export async function requestAPI<T>(
  segments: string[],
  init: RequestInit = {},
  query?: Query,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = apiUrl(settings, segments, query);
  if (init.body !== undefined && !(init.headers as any)?.['Content-Type']) {
    init = {
      ...init,
      headers: { ...(init.headers as any), 'Content-Type': 'application/json' }
    };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new MlwsApiError(
      `Cannot reach the Jupyter server: ${(error as Error).message ?? error}`,
      0,
      'network_error',
      'Check that the server is running.'
    );
  }
  const text = await response.text();
  let data: any = undefined;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    if (data && typeof data === 'object' && typeof data.message === 'string') {
      throw new MlwsApiError(
        data.message,
        response.status,
        data.error ?? 'error',
        data.hint ?? undefined,
        data.details ?? undefined
      );
    }
    let hint: string | undefined;
    if (response.status === 404) {
      hint = 'Is the jupyter_mlws server extension enabled? (jupyter server extension list)';
    }
    throw new MlwsApiError(
      typeof data === 'string' && data && data.length < 300
        ? data
        : `${response.status} ${response.statusText} from ${segments.join('/')}`,
      response.status,
      'http_error',
      hint
    );
  }
  return data as T;
}
