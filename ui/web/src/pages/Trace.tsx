import { useMemo, useState } from "preact/hooks";
import { type Correlation, type Jaeger, type JaegerSpan, type JaegerTrace, type KeyValue, getJson } from "../api";
import { colorOf } from "../components/Chart";
import { Status } from "../components/Status";
import { useLoad } from "../hooks";
import { formatDuration, formatTime, parseTs } from "../time";
import { href } from "../url";
import { CORRELATION_FIELDS } from "./Logs";

interface Node {
  span: JaegerSpan;
  service: string;
  depth: number;
  children: Node[];
  error: boolean;
}

export function isError(span: JaegerSpan): boolean {
  return span.tags.some((t) => (t.key === "error" && t.value === true) || (t.key === "otel.status_code" && t.value === "ERROR"));
}

/** The span tree: roots are spans whose parent is not in the trace; children in start order. */
function tree(trace: JaegerTrace): Node[] {
  const ids = new Set(trace.spans.map((s) => s.spanID));
  const byParent = new Map<string, JaegerSpan[]>();
  const roots: JaegerSpan[] = [];
  for (const s of trace.spans) {
    const parent = s.references.find((r) => r.refType === "CHILD_OF" && ids.has(r.spanID));
    if (parent) byParent.set(parent.spanID, [...(byParent.get(parent.spanID) ?? []), s]);
    else roots.push(s);
  }
  const seen = new Set<string>();
  const build = (s: JaegerSpan, depth: number): Node => {
    seen.add(s.spanID);
    const kids = (byParent.get(s.spanID) ?? []).filter((k) => !seen.has(k.spanID)).sort((a, b) => a.startTime - b.startTime);
    return { span: s, service: trace.processes[s.processID]?.serviceName ?? "?", depth, error: isError(s), children: kids.map((k) => build(k, depth + 1)) };
  };
  return roots.sort((a, b) => a.startTime - b.startTime).map((r) => build(r, 0));
}

function KeyValues(props: { title: string; items: KeyValue[] }) {
  if (props.items.length === 0) return null;
  return (
    <div class="kv">
      <h4>{props.title}</h4>
      <table>
        <tbody>
          {props.items.map((t) => (
            <tr key={t.key}>
              <th scope="row">{t.key}</th>
              <td>
                {CORRELATION_FIELDS.includes(t.key) && typeof t.value === "string" ? <a href={href("/ui/correlate", { id: t.value })}>{t.value}</a> : String(t.value)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Jaeger UI's trace view: a waterfall of the span tree, details per span, and the trace's log lines. */
export function TracePage(props: { id: string }) {
  const trace = useLoad(props.id, (signal) =>
    getJson<Jaeger<JaegerTrace[] | null>>(`/jaeger/api/traces/${encodeURIComponent(props.id)}`, {}, signal).then((b) => {
      const t = b.data?.[0];
      if (!t) throw new Error(`No trace with id ${props.id}.`);
      return t;
    }),
  );
  const logs = useLoad(props.id, (signal) => getJson<Correlation>(`/api/v1/correlate/${encodeURIComponent(props.id)}`, {}, signal).then((c) => c.logs));
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const [selected, setSelected] = useState<string | null>(null);
  const view = useMemo(() => {
    if (trace.state !== "done") return null;
    const t = trace.value;
    const start = Math.min(...t.spans.map((s) => s.startTime));
    const end = Math.max(...t.spans.map((s) => s.startTime + s.duration));
    const services = [...new Set(t.spans.map((s) => t.processes[s.processID]?.serviceName ?? "?"))].sort();
    return { roots: tree(t), start, duration: Math.max(end - start, 1), services };
  }, [trace]);
  const rows: Node[] = [];
  const walk = (n: Node) => {
    rows.push(n);
    if (!collapsed.has(n.span.spanID)) n.children.forEach(walk);
  };
  view?.roots.forEach(walk);
  const toggle = (id: string) => {
    const next = new Set(collapsed);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setCollapsed(next);
  };
  return (
    <section class="page trace">
      <Status load={trace}>
        {(t) => (
          <>
            <header class="tracehead">
              <h1>
                {rows[0] ? `${rows[0].service}: ${rows[0].span.operationName}` : "Trace"} <code>{t.traceID}</code>
              </h1>
              <p class="note">
                {formatTime(view!.start / 1000)} · duration {formatDuration(view!.duration)} · {t.spans.length} spans · {view!.services.length} services ·{" "}
                <a href={href("/ui/correlate", { id: t.traceID })}>correlate this trace id</a>
              </p>
            </header>
            <div class="waterfall" role="tree" aria-label="Spans">
              <div class="ticks">
                {[0, 0.25, 0.5, 0.75, 1].map((f) => (
                  <span key={f} style={{ left: `calc(35% + ${f * 65}%)` }}>
                    {formatDuration(view!.duration * f)}
                  </span>
                ))}
              </div>
              {rows.map((n) => {
                const s = n.span;
                const left = ((s.startTime - view!.start) / view!.duration) * 100;
                const width = Math.max((s.duration / view!.duration) * 100, 0.3);
                const color = colorOf(view!.services.indexOf(n.service));
                const open = selected === s.spanID;
                const process = t.processes[s.processID];
                return (
                  <div key={s.spanID} class={`span ${n.error ? "failed" : ""}`} role="treeitem" aria-expanded={n.children.length ? !collapsed.has(s.spanID) : undefined} aria-level={n.depth + 1}>
                    <div class="row">
                      <div class="name" style={{ paddingLeft: `${n.depth * 16}px` }}>
                        {n.children.length > 0 ? (
                          <button type="button" class="twisty" aria-label={collapsed.has(s.spanID) ? "Expand" : "Collapse"} onClick={() => toggle(s.spanID)}>
                            {collapsed.has(s.spanID) ? "▸" : "▾"}
                          </button>
                        ) : (
                          <span class="twisty" />
                        )}
                        <button type="button" class="label" onClick={() => setSelected(open ? null : s.spanID)} aria-pressed={open}>
                          <span class="svc" style={{ borderColor: color }}>
                            {n.service}
                          </span>{" "}
                          {s.operationName}
                          {n.error && <span class="err" title="error"> ⚠</span>}
                        </button>
                      </div>
                      <div class="bar">
                        <span class="fill" style={{ left: `${left}%`, width: `${width}%`, background: n.error ? "var(--err)" : color }} />
                        <span class={`dur ${left + width > 85 ? "inside" : ""}`} style={left + width > 85 ? { right: `${100 - left - width}%` } : { left: `${left + width}%` }}>
                          {formatDuration(s.duration)}
                        </span>
                      </div>
                    </div>
                    {open && (
                      <div class="spandetail">
                        <p class="note">
                          span <code>{s.spanID}</code> · start +{formatDuration(s.startTime - view!.start)} · {formatDuration(s.duration)}
                        </p>
                        <KeyValues title="Attributes" items={s.tags} />
                        {s.logs.length > 0 && (
                          <div class="kv">
                            <h4>Events</h4>
                            <ul>
                              {s.logs.map((l, i) => (
                                <li key={i}>
                                  +{formatDuration(l.timestamp - s.startTime)}: {l.fields.map((f) => `${f.key}=${String(f.value)}`).join(" ")}
                                </li>
                              ))}
                            </ul>
                          </div>
                        )}
                        <KeyValues title="Resource" items={process?.tags ?? []} />
                      </div>
                    )}
                  </div>
                );
              })}
            </div>
            <h2>Log lines of this trace</h2>
            <Status load={logs} empty={(l) => (l.length === 0 ? "No log line carries this trace id." : null)}>
              {(lines) => (
                <ul class="loglist inline" aria-label="Trace logs">
                  {lines.map((l, i) => (
                    <li key={i} class="log">
                      <div class="line">
                        <span class="ts">{formatTime(parseTs(l.timestamp))}</span>
                        <span class="svc">{l.service}</span>
                        <span class={`lvl lvl-${l.level.toLowerCase()}`}>{l.level}</span>
                        <span class="msg">{l.message}</span>
                      </div>
                    </li>
                  ))}
                </ul>
              )}
            </Status>
          </>
        )}
      </Status>
    </section>
  );
}
