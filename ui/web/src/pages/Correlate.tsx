import { useState } from "preact/hooks";
import { type Correlation, type TimelineEntry, getJson } from "../api";
import { colorOf } from "../components/Chart";
import { Status } from "../components/Status";
import { useLoad } from "../hooks";
import { formatDuration, formatTime, parseTs } from "../time";
import { href, setParams, useLocation } from "../url";

function entryEnd(e: TimelineEntry): number {
  const t = parseTs(e.timestamp) * 1000;
  return e.kind === "span" ? t + e.duration_us : t;
}

/** One id in, every log line and span that carries it out: a lane per service on one timeline. */
export function CorrelatePage() {
  const { params } = useLocation();
  const id = (params.get("id") ?? "").trim();
  const [text, setText] = useState(id);
  const found = useLoad(id || null, (signal) => getJson<Correlation>(`/api/v1/correlate/${encodeURIComponent(id)}`, {}, signal));
  return (
    <section class="page correlate">
      <h1 class="sr-only">Correlate</h1>
      <form
        class="querybar"
        onSubmit={(e) => {
          e.preventDefault();
          setParams({ id: text.trim() });
        }}
      >
        <input aria-label="Id to correlate" value={text} placeholder="A request uuid, trace id, span id or any correlation id" onInput={(e) => setText(e.currentTarget.value)} />
        <button type="submit">Correlate</button>
      </form>
      <Status load={found} idle="Paste any id (a request uuid, a trace id) to see every log line and span that carries it." empty={(c) => (c.timeline.length === 0 ? `Nothing carries "${id}": no log line or span has it as trace id, span id or in a correlation field.` : null)}>
        {(c) => {
          const start = Math.min(...c.timeline.map((e) => parseTs(e.timestamp) * 1000));
          const end = Math.max(...c.timeline.map(entryEnd));
          const span = Math.max(end - start, 1);
          const services = c.services.map((s) => s.name);
          return (
            <>
              <p class="note">
                {c.logs.length} log lines and {c.spans.length} spans across {services.length} services over {formatDuration(span)}
                {c.traces.length > 0 && (
                  <>
                    {" "}
                    · traces:{" "}
                    {c.traces.map((t) => (
                      <a key={t.trace_id} href={`/ui/traces/${t.trace_id}`}>
                        <code>{t.trace_id.slice(0, 16)}</code>{" "}
                      </a>
                    ))}
                  </>
                )}
              </p>
              <div class="lanes" role="list" aria-label="Timeline by service">
                {services.map((name, i) => (
                  <div key={name} class="lane" role="listitem">
                    <span class="lanename" style={{ borderColor: colorOf(i) }}>
                      {name}
                    </span>
                    <div class="track">
                      {c.timeline
                        .filter((e) => e.service === name)
                        .map((e, j) => {
                          const t = parseTs(e.timestamp) * 1000;
                          const left = ((t - start) / span) * 100;
                          if (e.kind === "span") {
                            const width = Math.max((e.duration_us / span) * 100, 0.4);
                            return <a key={j} class={`mark spanmark ${e.status === "STATUS_CODE_ERROR" ? "failed" : ""}`} href={`/ui/traces/${e.trace_id}`} title={`${e.operation} · ${formatDuration(e.duration_us)}`} style={{ left: `${left}%`, width: `${width}%`, background: colorOf(i) }} />;
                          }
                          return <span key={j} class={`mark logmark lvl-${e.level.toLowerCase()}`} title={`${e.level} ${e.message}`} style={{ left: `${left}%` }} />;
                        })}
                    </div>
                  </div>
                ))}
              </div>
              <table class="timeline" aria-label="Logs and spans in time order">
                <thead>
                  <tr>
                    <th>Time</th>
                    <th>Service</th>
                    <th>Kind</th>
                    <th>What</th>
                  </tr>
                </thead>
                <tbody>
                  {c.timeline.map((e, j) => (
                    <tr key={j} class={e.kind}>
                      <td class="ts">{formatTime(parseTs(e.timestamp))}</td>
                      <td>
                        <span class="chip" style={{ borderColor: colorOf(services.indexOf(e.service)) }}>
                          {e.service}
                        </span>
                      </td>
                      <td>{e.kind === "span" ? "span" : <span class={`lvl lvl-${e.level.toLowerCase()}`}>{e.level}</span>}</td>
                      <td>
                        {e.kind === "span" ? (
                          <a href={`/ui/traces/${e.trace_id}`}>
                            {e.operation} ({formatDuration(e.duration_us)}){e.status === "STATUS_CODE_ERROR" && <span class="err"> ⚠ error</span>}
                          </a>
                        ) : (
                          <a class="plain" href={href("/ui/logs", { q: `"${id}"`, from: new Date(start / 1000 - 60e3).toISOString(), to: new Date(end / 1000 + 60e3).toISOString() })}>
                            {e.message}
                          </a>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          );
        }}
      </Status>
    </section>
  );
}
