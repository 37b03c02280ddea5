import { useMemo, useState } from "preact/hooks";
import { type Jaeger, type JaegerTrace, getJson } from "../api";
import { Chart, colorOf } from "../components/Chart";
import { Status } from "../components/Status";
import { TimePicker } from "../components/TimePicker";
import { useLoad } from "../hooks";
import { formatDuration, formatTime, resolveRange } from "../time";
import { navigate, setParams, useLocation } from "../url";
import { DependencyGraph } from "./Dependencies";

/** A trace's summary as Jaeger's search list shows it. */
export function summarize(trace: JaegerTrace) {
  const spans = trace.spans;
  const start = Math.min(...spans.map((s) => s.startTime));
  const end = Math.max(...spans.map((s) => s.startTime + s.duration));
  const ids = new Set(spans.map((s) => s.spanID));
  const root = spans.find((s) => !s.references.some((r) => r.refType === "CHILD_OF" && ids.has(r.spanID))) ?? spans[0];
  const services = new Map<string, number>();
  for (const s of spans) {
    const name = trace.processes[s.processID]?.serviceName ?? "?";
    services.set(name, (services.get(name) ?? 0) + 1);
  }
  const errors = spans.filter((s) => s.tags.some((t) => (t.key === "error" && t.value === true) || (t.key === "otel.status_code" && t.value === "ERROR"))).length;
  return {
    id: trace.traceID,
    start,
    duration: end - start,
    root: `${trace.processes[root.processID]?.serviceName ?? "?"}: ${root.operationName}`,
    services,
    spans: spans.length,
    errors,
  };
}

/** Jaeger UI's search: by service, operation, tags, durations, time range and limit. */
export function TracesPage() {
  const { params } = useLocation();
  const service = params.get("service") ?? "";
  const operation = params.get("operation") ?? "";
  const tags = params.get("tags") ?? "";
  const minDuration = params.get("minDuration") ?? "";
  const maxDuration = params.get("maxDuration") ?? "";
  const limit = params.get("limit") ?? "20";
  const from = params.get("from") ?? "now-1h";
  const to = params.get("to") ?? "now";
  const view = params.get("view") ?? "search";
  const [form, setForm] = useState({ tags, minDuration, maxDuration, limit });
  const services = useLoad("services", (signal) => getJson<Jaeger<string[] | null>>("/jaeger/api/services", {}, signal).then((b) => b.data ?? []));
  const operations = useLoad(service ? service : null, (signal) =>
    getJson<Jaeger<string[] | null>>(`/jaeger/api/services/${encodeURIComponent(service)}/operations`, {}, signal).then((b) => b.data ?? []),
  );
  const resolved = resolveRange({ from, to });
  const key = service && typeof resolved !== "string" && view === "search" ? JSON.stringify([service, operation, tags, minDuration, maxDuration, limit, from, to]) : null;
  const traces = useLoad(key, async (signal) => {
    if (typeof resolved === "string") throw new Error(resolved);
    let tagsJson: string | undefined;
    if (tags.trim()) {
      // `key=value key2=value2` as Jaeger UI writes tags; sent as Jaeger's JSON form.
      const map: Record<string, string> = {};
      for (const pair of tags.trim().split(/\s+/)) {
        const eq = pair.indexOf("=");
        if (eq <= 0) throw new Error(`tag "${pair}" should be key=value`);
        map[pair.slice(0, eq)] = pair.slice(eq + 1).replace(/^"|"$/g, "");
      }
      tagsJson = JSON.stringify(map);
    }
    const body = await getJson<Jaeger<JaegerTrace[] | null>>(
      "/jaeger/api/traces",
      {
        service,
        operation: operation || undefined,
        tags: tagsJson,
        minDuration: minDuration || undefined,
        maxDuration: maxDuration || undefined,
        limit,
        start: Math.round(resolved.start * 1000),
        end: Math.round(resolved.end * 1000),
      },
      signal,
    );
    return (body.data ?? []).map(summarize).sort((a, b) => b.start - a.start);
  });
  const scatter = useMemo(() => {
    if (traces.state !== "done" || traces.value.length === 0) return null;
    const sorted = [...traces.value].sort((a, b) => a.start - b.start);
    return { sorted, xs: sorted.map((t) => t.start / 1e6), series: [{ label: "duration (ms)", values: sorted.map((t) => t.duration / 1000), color: colorOf(0) }] };
  }, [traces]);
  return (
    <section class="page traces">
      <h1 class="sr-only">Traces</h1>
      <div class="tabs" role="tablist">
        <button type="button" role="tab" aria-selected={view === "search"} onClick={() => setParams({ view: null })}>
          Search
        </button>
        <button type="button" role="tab" aria-selected={view === "deps"} onClick={() => setParams({ view: "deps" })}>
          Service dependencies
        </button>
      </div>
      {view === "deps" ? (
        <DependencyGraph />
      ) : (
        <div class="split">
          <form
            class="side"
            onSubmit={(e) => {
              e.preventDefault();
              setParams({ ...form });
            }}
          >
            <label>
              Service
              <select value={service} onChange={(e) => setParams({ service: e.currentTarget.value, operation: null })}>
                <option value="">{services.state === "loading" ? "Loading…" : "Choose a service"}</option>
                {services.state === "done" && services.value.map((s) => <option key={s}>{s}</option>)}
              </select>
            </label>
            <label>
              Operation
              <select value={operation} onChange={(e) => setParams({ operation: e.currentTarget.value })} disabled={!service}>
                <option value="">All</option>
                {operations.state === "done" && operations.value.map((o) => <option key={o}>{o}</option>)}
              </select>
            </label>
            <label>
              Tags
              <input value={form.tags} placeholder="http.status_code=500 uuid=…" onInput={(e) => setForm({ ...form, tags: e.currentTarget.value })} />
            </label>
            <div class="pair">
              <label>
                Min duration
                <input value={form.minDuration} placeholder="e.g. 100ms" onInput={(e) => setForm({ ...form, minDuration: e.currentTarget.value })} />
              </label>
              <label>
                Max duration
                <input value={form.maxDuration} placeholder="e.g. 1.2s" onInput={(e) => setForm({ ...form, maxDuration: e.currentTarget.value })} />
              </label>
            </div>
            <label>
              Limit
              <input type="number" min={1} max={1500} value={form.limit} onInput={(e) => setForm({ ...form, limit: e.currentTarget.value })} />
            </label>
            <TimePicker range={{ from, to }} onChange={(r) => setParams({ from: r.from, to: r.to })} />
            <button type="submit">Find traces</button>
            {services.state === "error" && <p class="error">{services.error}</p>}
          </form>
          <div class="results">
            <Status load={traces} idle="Choose a service to search its traces." empty={(v) => (v.length === 0 ? "No traces match this search in this time range." : null)}>
              {(list) => (
                <>
                  {scatter && (
                    <Chart
                      label="Trace durations over time (click a point to open its trace)"
                      kind="points"
                      height={160}
                      xs={scatter.xs}
                      series={scatter.series}
                      yLabel="ms"
                      onPick={(_, i) => navigate(`/ui/traces/${scatter.sorted[i].id}`)}
                    />
                  )}
                  <p class="note">{list.length} traces</p>
                  <ul class="tracelist" aria-label="Traces">
                    {list.map((t) => (
                      <li key={t.id}>
                        <a href={`/ui/traces/${t.id}`}>
                          <span class="title">{t.root}</span>
                          <span class="dur">{formatDuration(t.duration)}</span>
                          <span class="meta">
                            {t.spans} spans{t.errors > 0 && <span class="err"> · {t.errors} errors</span>} · {formatTime(t.start / 1000)} · <code>{t.id.slice(0, 16)}</code>
                          </span>
                          <span class="svcs">
                            {[...t.services].map(([name, n]) => (
                              <span key={name} class="chip">
                                {name} ({n})
                              </span>
                            ))}
                          </span>
                        </a>
                      </li>
                    ))}
                  </ul>
                </>
              )}
            </Status>
          </div>
        </div>
      )}
    </section>
  );
}
