// Every call the UI makes goes through the public HTTP APIs of CONTRACTS.md.

/** An API answered with an error: its words, as the server put them. */
export class ApiError extends Error {}

async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    const words = body.error ?? (Array.isArray(body.errors) ? body.errors.map((e: { msg?: string }) => e.msg ?? String(e)).join("; ") : undefined);
    if (words) return new ApiError(`${words}`);
  } catch {
    // not JSON: the text itself
  }
  return new ApiError(text.trim() || `${response.status} ${response.statusText}`);
}

export async function getJson<T>(path: string, params: Record<string, string | number | undefined> = {}, signal?: AbortSignal): Promise<T> {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") query.set(k, String(v));
  const qs = query.toString();
  let response: Response;
  try {
    response = await fetch(qs ? `${path}?${qs}` : path, { signal, headers: { Accept: "application/json" } });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(`Sextant cannot be reached (${(e as Error).message})`);
  }
  if (!response.ok) throw await errorOf(response);
  return (await response.json()) as T;
}

export async function send<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await errorOf(response);
  const text = await response.text();
  return (text ? JSON.parse(text) : {}) as T;
}

// ---- logs

export interface LogHit {
  timestamp: string;
  service: string;
  level: string;
  host: string;
  message: string;
  fields: Record<string, unknown>;
}
export interface LogPage {
  total: number;
  hits: LogHit[];
  next_cursor?: string;
}
export interface Bucket {
  t: string;
  count: number;
}
export interface FieldSummary {
  name: string;
  count: number;
  top: { value: string; count: number }[];
}

// ---- traces (Jaeger's model)

export interface KeyValue {
  key: string;
  type: string;
  value: unknown;
}
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: string; traceID: string; spanID: string }[];
  startTime: number;
  duration: number;
  tags: KeyValue[];
  logs: { timestamp: number; fields: KeyValue[] }[];
  processID: string;
  warnings: string[] | null;
}
export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: KeyValue[] }>;
}
export interface Jaeger<T> {
  data: T;
  errors: { code: number; msg: string }[] | null;
}

// ---- correlation

export interface CorrelatedSpan {
  timestamp: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string;
  service: string;
  operation: string;
  kind: string;
  status: string;
  duration_us: number;
  attributes: Record<string, unknown>;
}
export type TimelineEntry = (LogHit & { kind: "log" }) | (CorrelatedSpan & { kind: "span" });
export interface Correlation {
  id: string;
  services: { name: string; logs: number; spans: number; first: string; last: string }[];
  logs: LogHit[];
  spans: CorrelatedSpan[];
  timeline: TimelineEntry[];
  traces: { trace_id: string }[];
}

// ---- Prometheus

export interface PromEnvelope<T> {
  status: "success" | "error";
  data: T;
  error?: string;
  warnings?: string[];
}
export interface RangeSeries {
  metric: Record<string, string>;
  values: [number, string][];
}
export interface InstantSample {
  metric: Record<string, string>;
  value: [number, string];
}
export type QueryData =
  | { resultType: "matrix"; result: RangeSeries[] }
  | { resultType: "vector"; result: InstantSample[] }
  | { resultType: "scalar" | "string"; result: [number, string] };

/** One series' exemplars, as `/api/v1/query_exemplars` answers. */
export interface SeriesExemplars {
  seriesLabels: Record<string, string>;
  exemplars: { labels: Record<string, string>; value: string; timestamp: number }[];
}

export async function prom<T>(path: string, params: Record<string, string | number | undefined>, signal?: AbortSignal): Promise<T> {
  const body = await getJson<PromEnvelope<T>>(path, params, signal);
  if (body.status !== "success") throw new ApiError(body.error ?? "the query failed");
  return body.data;
}

// ---- alerting

export interface RuleAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: string;
  activeAt?: string;
  value: string;
}
export interface Rule {
  name: string;
  query: string;
  duration?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  alerts?: RuleAlert[];
  health: string;
  lastError?: string;
  type: "alerting" | "recording";
  state?: string;
  lastEvaluation: string;
  evaluationTime: number;
}
export interface RuleGroup {
  name: string;
  file: string;
  interval: number;
  rules: Rule[];
}
export interface Transition {
  rule: string;
  group?: string;
  labels: Record<string, string>;
  from: string;
  to: string;
  value: number | string;
  time?: string;
  timestamp?: string;
}
export interface Silence {
  id: string;
  matchers: { name: string; value: string; isRegex: boolean; isEqual?: boolean }[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
  status: { state: string };
}
