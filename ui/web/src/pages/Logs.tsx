import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { type Bucket, type FieldSummary, type LogHit, type LogPage, getJson } from "../api";
import { Chart } from "../components/Chart";
import { QueryBar } from "../components/QueryBar";
import { Status } from "../components/Status";
import { TimePicker } from "../components/TimePicker";
import { VirtualList } from "../components/VirtualList";
import { useLoad } from "../hooks";
import { formatTime, parseTs, resolveRange, zoneName } from "../time";
import { href, setParams, useLocation } from "../url";

/** Fields whose values are ids to follow: to the trace, or to the correlation view. */
export const CORRELATION_FIELDS = ["trace_id", "span_id", "request_id", "x_request_id", "correlation_id", "uuid"];

const PAGE = 500;

/** Numbers each answer, so that rows of a new search are new rows. */
let generation = 0;
/** Numbers lines of the live tail as they arrive. */
let tailSeq = 0;

/** `name:"value"` as the Lucene syntax quotes it. */
export function term(name: string, value: string): string {
  return `${name}:"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function addClause(q: string, clause: string): string {
  const t = q.trim();
  return t ? `${t} AND ${clause}` : clause;
}

function IdLink(props: { name: string; value: string }) {
  const { name, value } = props;
  if (name === "trace_id") {
    return (
      <span class="ids">
        <a href={`/ui/traces/${encodeURIComponent(value)}`} title="Open the trace">
          {value}
        </a>{" "}
        <a class="aside" href={href("/ui/correlate", { id: value })} title="Everything that carries this id">
          correlate
        </a>
      </span>
    );
  }
  return (
    <a href={href("/ui/correlate", { id: value })} title="Every log line and span that carries this id">
      {value}
    </a>
  );
}

function FieldValue(props: { name: string; value: unknown }) {
  const text = typeof props.value === "string" ? props.value : JSON.stringify(props.value);
  if (CORRELATION_FIELDS.includes(props.name) && typeof props.value === "string") return <IdLink name={props.name} value={text} />;
  return <span>{text}</span>;
}

function LogRow(props: { hit: LogHit; q: string; onQuery: (q: string) => void }) {
  const { hit } = props;
  const [open, setOpen] = useState(false);
  const level = (hit.level || "").toLowerCase();
  const all: [string, unknown][] = [
    ["service", hit.service],
    ["level", hit.level],
    ["host", hit.host],
    ...Object.entries(hit.fields).filter(([k]) => k !== "service" && k !== "level" && k !== "host"),
  ].filter(([, v]) => v !== "" && v !== undefined && v !== null) as [string, unknown][];
  return (
    <div class={`log ${open ? "open" : ""}`}>
      <button type="button" class="line" aria-expanded={open} onClick={() => setOpen(!open)}>
        <span class="ts">{formatTime(parseTs(hit.timestamp))}</span>
        <span class="svc">{hit.service}</span>
        <span class={`lvl lvl-${level}`}>{hit.level}</span>
        <span class="msg">{hit.message}</span>
      </button>
      {open && (
        <div class="detail">
          <table class="fields">
            <tbody>
              {all.map(([name, value]) => (
                <tr key={name}>
                  <th scope="row">{name}</th>
                  <td class="filter">
                    <button type="button" title={`Only lines with ${name} = this value`} aria-label={`Filter for ${name}`} onClick={() => props.onQuery(addClause(props.q, term(name, String(value))))}>
                      ⊕
                    </button>
                    <button type="button" title={`Lines without this ${name}`} aria-label={`Filter out ${name}`} onClick={() => props.onQuery(addClause(props.q, `NOT ${term(name, String(value))}`))}>
                      ⊖
                    </button>
                  </td>
                  <td>
                    <FieldValue name={name} value={value} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <details>
            <summary>JSON</summary>
            <pre class="raw">{JSON.stringify(hit, null, 2)}</pre>
          </details>
        </div>
      )}
    </div>
  );
}

/** Kibana Discover's job: search, a histogram of matches, lines to expand and filter by. */
export function LogsPage(props: { onZone: () => void }) {
  const { params } = useLocation();
  const q = params.get("q") ?? "";
  const from = params.get("from") ?? "now-1h";
  const to = params.get("to") ?? "now";
  const live = params.get("live") === "1";
  const [run, setRun] = useState(0);
  const resolved = resolveRange({ from, to });
  const key = typeof resolved === "string" ? null : JSON.stringify([q, from, to, run]);
  const bounds = useMemo(() => resolved, [key]);
  const [more, setMore] = useState<LogHit[]>([]);
  const [cursor, setCursor] = useState<string | undefined>();
  const results = useLoad(key, async (signal) => {
    if (typeof bounds === "string") throw new Error(bounds);
    const page = await getJson<LogPage>("/api/v1/logs/search", { q, start: bounds.start / 1000, end: bounds.end / 1000, limit: PAGE }, signal);
    performance.mark("logs:response");
    setMore([]);
    setCursor(page.next_cursor);
    return { page, generation: ++generation };
  });
  const histogram = useLoad(key, async (signal) => {
    if (typeof bounds === "string") throw new Error(bounds);
    const step = Math.max(1, Math.round((bounds.end - bounds.start) / 1000 / 100));
    return getJson<{ buckets: Bucket[] }>("/api/v1/logs/histogram", { q, start: bounds.start / 1000, end: bounds.end / 1000, step }, signal);
  });
  const fields = useLoad(typeof resolved === "string" ? null : JSON.stringify([from, to, run]), async (signal) => {
    if (typeof bounds === "string") return [];
    const body = await getJson<{ fields: FieldSummary[] }>("/api/v1/logs/fields", { start: bounds.start / 1000, end: bounds.end / 1000 }, signal);
    return body.fields;
  });
  const [tailed, setTailed] = useState<{ seq: number; hit: LogHit }[]>([]);
  const [tailError, setTailError] = useState<string | null>(null);
  const tailRef = useRef<EventSource | null>(null);
  useEffect(() => {
    setTailed([]);
    setTailError(null);
    if (!live) return;
    const source = new EventSource(href("/api/v1/logs/tail", { q }));
    tailRef.current = source;
    source.onmessage = (e) => {
      try {
        const hit = JSON.parse(e.data) as LogHit;
        setTailed((old) => [{ seq: ++tailSeq, hit }, ...old].slice(0, 5000));
      } catch {
        // a keep-alive or a comment
      }
    };
    source.onerror = () => setTailError("The live tail lost its connection; it reconnects by itself.");
    source.onopen = () => setTailError(null);
    return () => source.close();
  }, [live, q]);
  // How long the rows take to be laid out after the answer came (User
  // Timing, read by bench/ui): the DOM is committed here, and reading a
  // size forces the layout the browser would do before painting.
  useLayoutEffect(() => {
    if (results.state !== "done") return;
    void document.querySelector(".loglist")?.getBoundingClientRect();
    if (performance.getEntriesByName("logs:response", "mark").length) {
      performance.measure("logs:render", "logs:response");
      performance.clearMarks("logs:response");
    }
  }, [results]);
  const setQuery = (text: string) => setParams({ q: text });
  const chartData = useMemo(() => {
    if (histogram.state !== "done") return null;
    const b = histogram.value.buckets;
    return { xs: b.map((x) => parseTs(x.t) / 1000), series: [{ label: "matches", values: b.map((x) => x.count) }] };
  }, [histogram]);
  const names = fields.state === "done" ? fields.value : [];
  return (
    <section class="page logs">
      <h1 class="sr-only">Logs</h1>
      <div class="toolbar">
        <QueryBar
          value={q}
          label="Log query"
          placeholder='Lucene: service:orders AND level:ERROR, "sell order", duration_ms:>500'
          version={fields.state === "done" ? fields.value.length + 1 : 0}
          onSubmit={(text) => {
            if (text === q) setRun((n) => n + 1);
            else setQuery(text);
          }}
          suggest={(token) => {
            const colon = token.indexOf(":");
            if (colon > 0) {
              const name = token.slice(0, colon);
              const prefix = token.slice(colon + 1).replace(/^"/, "").toLowerCase();
              const field = names.find((f) => f.name === name);
              return (field?.top ?? []).filter((v) => v.value.toLowerCase().startsWith(prefix)).map((v) => ({ text: term(name, v.value), hint: `${v.count}` }));
            }
            const prefix = token.toLowerCase();
            return names.filter((f) => f.name.toLowerCase().startsWith(prefix)).map((f) => ({ text: `${f.name}:`, hint: `${f.count}`, partial: true }));
          }}
        />
        <TimePicker range={{ from, to }} onChange={(r) => setParams({ from: r.from, to: r.to })} onZone={() => { props.onZone(); setRun((n) => n + 1); }} />
        <label class="toggle">
          <input type="checkbox" checked={live} onChange={(e) => setParams({ live: e.currentTarget.checked ? "1" : null })} /> Live tail
        </label>
      </div>
      {typeof resolved === "string" && <p class="error" role="alert">{resolved}</p>}
      {chartData && (
        <Chart
          label="Matches over time (drag to zoom)"
          kind="bars"
          height={120}
          xRange={typeof bounds === "string" ? undefined : [bounds.start / 1000, bounds.end / 1000]}
          xs={chartData.xs}
          series={chartData.series}
          onSelect={(a, b) => setParams({ from: new Date(a * 1000).toISOString(), to: new Date(b * 1000).toISOString() })}
        />
      )}
      {live && (
        <div class="tail" aria-live="polite">
          <h2>Live tail {tailError ? <span class="error">{tailError}</span> : <span class="note">({tailed.length} new lines)</span>}</h2>
          <VirtualList class="loglist" label="Live tail lines" items={tailed} itemKey={(t) => `t${t.seq}`} render={(t) => <LogRow hit={t.hit} q={q} onQuery={setQuery} />} />
        </div>
      )}
      <Status load={results} empty={(r) => (r.page.hits.length === 0 ? "No log lines match this query in this time range." : null)}>
        {(r) => (
          <>
            <p class="note count">
              {r.page.total.toLocaleString()} {r.page.total === 1 ? "line" : "lines"} · newest first · times in {zoneName()}
            </p>
            <VirtualList class="loglist" label="Log lines" items={[...r.page.hits, ...more]} itemKey={(_, i) => `${r.generation}:${i}`} render={(hit) => <LogRow hit={hit} q={q} onQuery={setQuery} />} />
            {cursor && (
              <button
                type="button"
                class="more"
                onClick={async () => {
                  if (typeof bounds === "string") return;
                  const page = await getJson<LogPage>("/api/v1/logs/search", { q, start: bounds.start / 1000, end: bounds.end / 1000, limit: PAGE, cursor });
                  setMore((m) => [...m, ...page.hits]);
                  setCursor(page.next_cursor);
                }}
              >
                Older lines
              </button>
            )}
          </>
        )}
      </Status>
    </section>
  );
}
