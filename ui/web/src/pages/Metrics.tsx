import { useMemo, useRef, useState } from "preact/hooks";
import { type QueryData, type SeriesExemplars, getJson, prom } from "../api";
import { Chart, type ChartSeries, type Mark } from "../components/Chart";
import { QueryBar, type Suggestion } from "../components/QueryBar";
import { Status } from "../components/Status";
import { TimePicker } from "../components/TimePicker";
import { useLoad } from "../hooks";
import { autoStep, formatTime, resolveRange } from "../time";
import { navigate, setParams, useLocation } from "../url";

const FUNCTIONS = [
  "rate", "irate", "increase", "sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "histogram_quantile",
  "sum_over_time", "avg_over_time", "max_over_time", "min_over_time", "count_over_time", "quantile_over_time", "delta", "deriv",
  "abs", "ceil", "floor", "round", "clamp_min", "clamp_max", "label_replace", "label_join", "absent", "time", "vector", "scalar", "sort", "sort_desc",
];

/** `{{app}} p{{quantile}}` with a series' labels; the series' own name when there is no format. */
export function legendOf(format: string, metric: Record<string, string>): string {
  if (format.trim()) return format.replace(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g, (_, name: string) => metric[name] ?? "");
  const { __name__: name, ...labels } = metric;
  const inner = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(", ");
  return inner || !name ? `${name ?? ""}{${inner}}` : name;
}

/** What to complete at the caret: label values after `name=` in braces, label names in braces, else metric names and functions. */
function promSuggest(cache: Cache, token: string, text: string, start: number): Suggestion[] {
  const before = text.slice(0, start);
  const open = before.lastIndexOf("{");
  const inBraces = open > before.lastIndexOf("}");
  if (inBraces) {
    const op = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*$/.exec(before);
    if (op) {
      const metric = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(before.slice(0, open))?.[1];
      const values = cache.values(op[1], metric);
      const prefix = token.replace(/^"/, "");
      return values.filter((v) => v.startsWith(prefix)).map((v) => ({ text: `"${v}"` }));
    }
    return cache.labels().filter((l) => l.startsWith(token)).map((l) => ({ text: l, partial: true }));
  }
  const names = cache.metrics().filter((m) => m.startsWith(token)).map((m) => ({ text: m, hint: "metric" }));
  const fns = FUNCTIONS.filter((f) => f.startsWith(token)).map((f) => ({ text: `${f}(`, hint: "function", partial: true }));
  return [...names, ...fns];
}

interface Cache {
  /** Bumped whenever names or values arrive. */
  version: number;
  metrics(): string[];
  labels(): string[];
  values(label: string, metric?: string): string[];
}

function useCompletionCache(): Cache {
  const store = useRef<{ metrics: string[]; labels: string[]; values: Map<string, string[]> }>({ metrics: [], labels: [], values: new Map() });
  const started = useRef(false);
  const [tick, setTick] = useState(0);
  if (!started.current) {
    started.current = true;
    getJson<{ data: string[] }>("/api/v1/label/__name__/values").then((b) => { store.current.metrics = b.data; setTick((n) => n + 1); }).catch(() => {});
    getJson<{ data: string[] }>("/api/v1/labels").then((b) => { store.current.labels = b.data.filter((l) => l !== "__name__"); setTick((n) => n + 1); }).catch(() => {});
  }
  return {
    version: tick,
    metrics: () => store.current.metrics,
    labels: () => store.current.labels,
    values: (label, metric) => {
      const key = `${label}\u0000${metric ?? ""}`;
      const known = store.current.values.get(key);
      if (known) return known;
      store.current.values.set(key, []);
      getJson<{ data: string[] }>(`/api/v1/label/${encodeURIComponent(label)}/values`, metric ? { "match[]": metric } : {})
        .then((b) => { store.current.values.set(key, b.data); setTick((n) => n + 1); })
        .catch(() => {});
      return [];
    },
  };
}

/** Prometheus's graph page: a PromQL editor with completion, a graph or a table, range and step. */
export function MetricsPage() {
  const { params } = useLocation();
  const expr = params.get("expr") ?? "";
  const from = params.get("from") ?? "now-1h";
  const to = params.get("to") ?? "now";
  const stepParam = params.get("step") ?? "";
  const legend = params.get("legend") ?? "";
  const tab = params.get("tab") ?? "graph";
  const [run, setRun] = useState(0);
  const cache = useCompletionCache();
  const resolved = resolveRange({ from, to });
  const key = expr && typeof resolved !== "string" ? JSON.stringify([expr, from, to, stepParam, tab, run]) : null;
  const result = useLoad(key, async (signal) => {
    if (typeof resolved === "string") throw new Error(resolved);
    if (tab === "table") {
      const data = await prom<QueryData>("/api/v1/query", { query: expr, time: resolved.end / 1000 }, signal);
      return { data, step: 0 };
    }
    const step = stepParam ? Number(stepParam) : autoStep(resolved.start, resolved.end);
    if (!(step > 0)) throw new Error(`step "${stepParam}" should be a number of seconds above 0`);
    const range = { query: expr, start: resolved.start / 1000, end: resolved.end / 1000 };
    const [data, exemplars] = await Promise.all([
      prom<QueryData>("/api/v1/query_range", { ...range, step }, signal),
      // The traces behind the graph's series (a failure leaves the graph).
      prom<SeriesExemplars[]>("/api/v1/query_exemplars", range, signal).catch((e) => {
        if ((e as Error).name === "AbortError") throw e;
        return [] as SeriesExemplars[];
      }),
    ]);
    return { data, step, exemplars };
  });
  const marks = useMemo(() => {
    if (result.state !== "done" || !("exemplars" in result.value)) return [];
    const out: (Mark & { traceId: string })[] = [];
    for (const s of result.value.exemplars ?? [])
      for (const e of s.exemplars) {
        const traceId = e.labels.trace_id ?? e.labels.traceID ?? e.labels.traceId;
        if (!traceId) continue;
        out.push({ t: e.timestamp, value: Number(e.value), traceId, title: `${legendOf("", s.seriesLabels)} = ${e.value} at ${formatTime(e.timestamp * 1000, false)}` });
      }
    return out.slice(0, 500);
  }, [result]);
  const openTrace = (traceId: string) => navigate(`/ui/traces/${encodeURIComponent(traceId)}`);
  const chart = useMemo(() => {
    if (result.state !== "done" || result.value.data.resultType !== "matrix") return null;
    const series = result.value.data.result;
    const times = new Set<number>();
    for (const s of series) for (const [t] of s.values) times.add(t);
    const xs = [...times].sort((a, b) => a - b);
    const index = new Map(xs.map((t, i) => [t, i]));
    const out: ChartSeries[] = series.map((s) => {
      const values: (number | null)[] = new Array(xs.length).fill(null);
      for (const [t, v] of s.values) values[index.get(t)!] = Number(v);
      return { label: legendOf(legend, s.metric), values };
    });
    return { xs, series: out, points: xs.length * series.length };
  }, [result, legend]);
  return (
    <section class="page metrics">
      <h1 class="sr-only">Metrics</h1>
      <div class="toolbar">
        <QueryBar
          value={expr}
          label="PromQL expression"
          multiline
          placeholder="histogram_quantile(0.99, sum by (le, service) (rate(traces_spanmetrics_latency_bucket[5m])))"
          suggest={(token, text, start) => promSuggest(cache, token, text, start)}
          version={cache.version}
          onSubmit={(text) => (text === expr ? setRun((n) => n + 1) : setParams({ expr: text }))}
        />
        <TimePicker range={{ from, to }} onChange={(r) => setParams({ from: r.from, to: r.to })} />
      </div>
      <div class="options">
        <div class="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={tab === "graph"} onClick={() => setParams({ tab: null })}>
            Graph
          </button>
          <button type="button" role="tab" aria-selected={tab === "table"} onClick={() => setParams({ tab: "table" })}>
            Table
          </button>
        </div>
        <label>
          Step (s) <input class="short" value={stepParam} placeholder="auto" onChange={(e) => setParams({ step: e.currentTarget.value })} />
        </label>
        <label>
          Legend <input value={legend} placeholder="{{service}} p{{quantile}}" onChange={(e) => setParams({ legend: e.currentTarget.value })} />
        </label>
      </div>
      <Status
        load={result}
        idle="Type a PromQL expression and press Enter: names complete as you type."
        empty={(r) => (Array.isArray(r.data.result) && r.data.result.length === 0 ? "The query returned no series in this range." : null)}
      >
        {(r) =>
          tab === "graph" && chart ? (
            <>
              <Chart
                label="Query result over time (drag to zoom; diamonds are exemplars: click one to open its trace)"
                xRange={typeof resolved === "string" ? undefined : [resolved.start / 1000, resolved.end / 1000]}
                xs={chart.xs}
                series={chart.series}
                height={320}
                marks={marks}
                onMark={(m) => openTrace((m as Mark & { traceId: string }).traceId)}
                onSelect={(a, b) => setParams({ from: new Date(a * 1000).toISOString(), to: new Date(b * 1000).toISOString() })}
              />
              <p class="note">
                {chart.series.length} series · {chart.points.toLocaleString()} points · step {r.step}s
                {marks.length > 0 && ` · ${marks.length} exemplar${marks.length === 1 ? "" : "s"}`}
              </p>
              {marks.length > 0 && (
                <details class="exemplars">
                  <summary>Exemplars</summary>
                  <ul aria-label="Exemplars">
                    {marks.map((m, i) => (
                      <li key={i}>
                        <a href={`/ui/traces/${encodeURIComponent(m.traceId)}`}>trace {m.traceId.slice(0, 16)}</a> {m.title}
                      </li>
                    ))}
                  </ul>
                </details>
              )}
            </>
          ) : (
            <table class="result" aria-label="Query result">
              <thead>
                <tr>
                  <th>Series</th>
                  <th>Value</th>
                </tr>
              </thead>
              <tbody>
                {r.data.resultType === "vector" &&
                  r.data.result.map((s, i) => (
                    <tr key={i}>
                      <td>
                        <code>{legendOf("", s.metric)}</code>
                      </td>
                      <td>{s.value[1]}</td>
                    </tr>
                  ))}
                {r.data.resultType === "matrix" &&
                  r.data.result.map((s, i) => (
                    <tr key={i}>
                      <td>
                        <code>{legendOf("", s.metric)}</code>
                      </td>
                      <td>{s.values.map(([t, v]) => `${v} @ ${formatTime(t * 1000, false)}`).join(", ")}</td>
                    </tr>
                  ))}
                {(r.data.resultType === "scalar" || r.data.resultType === "string") && (
                  <tr>
                    <td>{r.data.resultType}</td>
                    <td>{r.data.result[1]}</td>
                  </tr>
                )}
              </tbody>
            </table>
          )
        }
      </Status>
    </section>
  );
}
