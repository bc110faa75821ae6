// The REST API v1 client used by every page. Errors come back from the server as
// {error: {code, message, details}, request_id}; they are raised as ApiError.

const TOKEN_KEY = 'serveml.token';

// The access token lives in localStorage so a reload or a second tab stays signed in.
// The page runs under a strict Content-Security-Policy (scripts only from this origin, no
// inline scripts), tokens expire on the server, and "Log out" removes it. See the
// "Dashboard" section of docs/user-guide.md.
export function getToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the session lasts as long as the page */
  }
  for (const fn of tokenListeners) fn(token);
}

const tokenListeners = new Set<(t: string | null) => void>();
export function onTokenChange(fn: (t: string | null) => void): () => void {
  tokenListeners.add(fn);
  return () => tokenListeners.delete(fn);
}

export class ApiError extends Error {
  status: number;
  code: string;
  details: unknown;
  requestId: string;
  constructor(status: number, code: string, message: string, details: unknown, requestId: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.requestId = requestId;
  }
}

function toApiError(status: number, text: string, requestId: string | null): ApiError {
  let body: any = null;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  const e = body && typeof body === 'object' ? body.error : null;
  if (e && typeof e === 'object') {
    return new ApiError(status, String(e.code || 'ERROR'), String(e.message || 'request failed'),
                        e.details ?? null, String(body.request_id || requestId || ''));
  }
  if (status === 0) {
    return new ApiError(0, 'NETWORK_ERROR', 'The server could not be reached. Check your connection and try again.', null, '');
  }
  return new ApiError(status, 'HTTP_' + status, `The server answered ${status}.`, null, requestId || '');
}

// Called when an authenticated request is refused with 401: the token is gone or expired.
let onUnauthorized: (() => void) | null = null;
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

export interface RequestOptions {
  body?: unknown;
  auth?: boolean; // send the token (default true)
  signal?: AbortSignal;
}

export async function api<T = any>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = getToken();
  const auth = opts.auth !== false;
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  let body: BodyInit | undefined;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let resp: Response;
  try {
    resp = await fetch(path, { method, headers, body, signal: opts.signal });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw toApiError(0, '', null);
  }
  const text = await resp.text();
  if (!resp.ok) {
    const e = toApiError(resp.status, text, resp.headers.get('X-Request-ID'));
    if (resp.status === 401 && auth && token && onUnauthorized) onUnauthorized();
    throw e;
  }
  return (text ? JSON.parse(text) : null) as T;
}

// multipart/form-data upload with real upload progress (XMLHttpRequest's upload events;
// fetch has no upload progress).
export function upload<T = any>(path: string, form: FormData,
                                onProgress: (loaded: number, total: number) => void): { promise: Promise<T>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<T>((resolve, reject) => {
    xhr.open('POST', path);
    xhr.setRequestHeader('Accept', 'application/json');
    const token = getToken();
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) onProgress(ev.loaded, ev.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText) as T);
        } catch {
          reject(toApiError(xhr.status, '', xhr.getResponseHeader('X-Request-ID')));
        }
      } else {
        if (xhr.status === 401 && onUnauthorized) onUnauthorized();
        reject(toApiError(xhr.status, xhr.responseText, xhr.getResponseHeader('X-Request-ID')));
      }
    };
    xhr.onerror = () => reject(toApiError(0, '', null));
    xhr.onabort = () => reject(new ApiError(0, 'ABORTED', 'The upload was cancelled.', null, ''));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

// ---- Shapes returned by the API (only the fields the dashboard uses) ----

export interface User {
  id: string;
  email: string;
  username: string;
  full_name: string | null;
  created_at: string;
  deployment_count?: number;
  total_predictions?: number;
}

export interface ModelMetadata {
  framework: string;
  model_type: string | null;
  size_mb: number;
  input_shape?: (number | null)[] | null;
  output_shape?: (number | null)[] | null;
  feature_names?: string[];
  classes?: (string | number)[];
  output_kind?: string;
}

export interface Configuration {
  memory_mb: number;
  timeout_seconds: number;
  min_instances: number;
  max_instances: number;
  is_public: boolean;
}

export interface Deployment {
  id: string;
  name: string;
  status: 'validating' | 'active' | 'failed' | string;
  created_at: string;
  updated_at: string;
  endpoint_url: string;
  current_version: string | null;
  error_message: string | null;
  model_metadata: ModelMetadata;
  configuration: Configuration;
  metrics_summary?: { request_count: number; error_count: number; avg_latency_ms: number; cold_starts: number };
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface Version {
  version: string;
  status: string;
  is_current: boolean;
  created_at: string;
  framework: string;
  size_bytes: number;
  filename: string;
  error_message: string | null;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  created_at: string;
  last_used_at: string | null;
  revoked: boolean;
  key?: string; // only in the create answer
}

export interface Metrics {
  deployment_id: string;
  period: { start: string; end: string };
  metrics: {
    request_count: number;
    error_count: number;
    avg_latency_ms: number;
    p50_latency_ms: number;
    p95_latency_ms: number;
    p99_latency_ms: number;
    cold_starts: number;
    unique_users: number;
  };
  time_series: {
    timestamps: (string | number)[];
    request_counts: number[];
    error_counts: number[];
    avg_latencies: (number | null)[];
    p95_latencies: (number | null)[];
    p50_latencies?: (number | null)[];
    p99_latencies?: (number | null)[];
  };
  cost_estimate?: { total_usd: number; breakdown?: Record<string, number> };
}

export interface ServiceStatus {
  status: string;
  api: string;
  deployments: string;
  predictions: string;
  database: string;
  storage: string;
  issues: { component: string; message: string }[];
  version: string;
  uptime_seconds: number;
  timestamp: string;
}
