import { useMemo, useState } from "preact/hooks";
import { type Bucket, type PromEnvelope, type QueryData, type Rule, type RuleGroup, type Silence, type Transition, getJson, prom, send } from "../api";
import { type Band, Chart, type ChartSeries } from "../components/Chart";
import { Status } from "../components/Status";
import { useLoad } from "../hooks";
import { autoStep, formatTime, parseTs } from "../time";
import { href, setParams, useLocation } from "../url";
import { legendOf } from "./Metrics";

const STATE_COLORS: Record<string, string> = { pending: "rgba(234,179,8,0.22)", firing: "rgba(239,68,68,0.22)", nodata: "rgba(100,116,139,0.25)" };

/** `expr > 100` as the series to graph and the threshold line to draw over it. */
export function splitThreshold(expr: string): { series: string; threshold?: number } {
  const m = /^([\s\S]*?)\s*(>=|<=|==|!=|>|<)\s*(?:bool\s+)?(-?[0-9.]+(?:e[+-]?\d+)?)\s*$/i.exec(expr.trim());
  if (!m) return { series: expr };
  return { series: m[1], threshold: Number(m[3]) };
}

/** Pending and firing spans of time, from a rule's state changes. */
function bandsOf(changes: Transition[], endSec: number): Band[] {
  const open = new Map<string, { state: string; since: number }>();
  const bands: Band[] = [];
  for (const c of [...changes].sort((a, b) => parseTs(a.timestamp ?? a.time ?? "") - parseTs(b.timestamp ?? b.time ?? ""))) {
    const key = JSON.stringify(c.labels);
    const at = parseTs(c.timestamp ?? c.time ?? "") / 1000;
    const before = open.get(key);
    if (before && STATE_COLORS[before.state]) bands.push([before.since, at, STATE_COLORS[before.state]]);
    open.set(key, { state: c.to, since: at });
  }
  for (const { state, since } of open.values()) if (STATE_COLORS[state]) bands.push([since, endSec, STATE_COLORS[state]]);
  return bands;
}

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(", ");
}

/** The book's figures: a rule's series with its threshold, and its pending and firing times as bands behind. */
function RuleHistory(props: { rule: Rule }) {
  const { rule } = props;
  const endMs = useMemo(() => Date.now(), [rule.name]);
  const history = useLoad(rule.name, (signal) => prom<Transition[]>("/api/v1/alerts/history", { rule: rule.name }, signal));
  // From a little before the first recorded change (15 minutes at least, a day at most).
  const first = history.state === "done" && history.value.length ? parseTs(history.value[0].timestamp ?? history.value[0].time ?? "") : endMs;
  const startMs = endMs - Math.min(Math.max((endMs - first) * 1.25, 15 * 60e3), 86400e3);
  const logRule = (rule as Rule & { logQuery?: { window: string; threshold: number } }).logQuery;
  const graph = useLoad(history.state === "done" || history.state === "error" ? rule.name + rule.query + startMs : null, async (signal): Promise<{ xs: number[]; series: ChartSeries[] }> => {
    if (logRule) {
      const body = await getJson<{ buckets: Bucket[] }>("/api/v1/logs/histogram", { q: rule.query, start: startMs / 1000, end: endMs / 1000, step: 60 }, signal);
      const xs = body.buckets.map((b) => parseTs(b.t) / 1000);
      return { xs, series: [{ label: "matching lines per minute", values: body.buckets.map((b) => b.count) }, { label: `threshold ${logRule.threshold} per ${logRule.window}`, values: xs.map(() => logRule.threshold), color: "#ef4444", dash: [6, 4] }] };
    }
    const { series, threshold } = splitThreshold(rule.query);
    const step = autoStep(startMs, endMs, 200);
    // Evaluation times on the step's grid: the answer's timestamps are these.
    const first = Math.ceil(startMs / 1000 / step) * step;
    const last = Math.floor(endMs / 1000 / step) * step;
    const data = await prom<QueryData>("/api/v1/query_range", { query: series, start: first, end: last, step }, signal);
    const xs: number[] = [];
    for (let t = first; t <= last; t += step) xs.push(t);
    const index = new Map(xs.map((t, i) => [t, i]));
    const out: ChartSeries[] = data.resultType === "matrix" ? data.result.slice(0, 20).map((s) => {
      const values: (number | null)[] = new Array(xs.length).fill(null);
      for (const [t, v] of s.values) if (index.has(t)) values[index.get(t)!] = Number(v);
      return { label: legendOf("", s.metric), values };
    }) : [];
    if (threshold !== undefined) out.push({ label: `threshold ${threshold}`, values: xs.map(() => threshold), color: "#ef4444", dash: [6, 4] });
    return { xs, series: out };
  });
  const bands = useMemo(() => (history.state === "done" ? bandsOf(history.value, endMs / 1000) : []), [history]);
  return (
    <div class="rulehistory">
      <Status load={graph}>{(g) => (g.xs.length ? <Chart label={`${rule.name} with its threshold; pending and firing shaded`} xRange={[g.xs[0], g.xs[g.xs.length - 1]]} xs={g.xs} series={g.series} bands={bands} height={220} /> : null)}</Status>
      <Status load={history} empty={(h) => (h.length === 0 ? "This rule has not changed state since Sextant started keeping its history." : null)}>
        {(changes) => (
          <table class="history" aria-label={`State history of ${rule.name}`}>
            <thead>
              <tr>
                <th>Time</th>
                <th>Labels</th>
                <th>Change</th>
                <th>Value</th>
              </tr>
            </thead>
            <tbody>
              {[...changes].reverse().map((c, i) => (
                <tr key={i}>
                  <td class="ts">{formatTime(parseTs(c.timestamp ?? c.time ?? ""), false)}</td>
                  <td>
                    <code>{labelText(c.labels)}</code>
                  </td>
                  <td>
                    <span class={`state s-${c.from}`}>{c.from}</span> → <span class={`state s-${c.to}`}>{c.to}</span>
                  </td>
                  <td>{String(c.value)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Status>
    </div>
  );
}

function SilenceForm(props: { matchers: string; onDone: () => void }) {
  const [matchers, setMatchers] = useState(props.matchers);
  const [hours, setHours] = useState("2");
  const [createdBy, setCreatedBy] = useState(localStorage.getItem("sextant.user") ?? "");
  const [comment, setComment] = useState("");
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      class="silenceform"
      aria-label="New silence"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(null);
        const parsed = [];
        for (const part of matchers.split(",").map((p) => p.trim()).filter(Boolean)) {
          const m = /^([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?$/.exec(part);
          if (!m) {
            setError(`matcher "${part}" should look like name="value" (or !=, =~, !~)`);
            return;
          }
          parsed.push({ name: m[1], value: m[3], isRegex: m[2].includes("~"), isEqual: !m[2].startsWith("!") });
        }
        if (parsed.length === 0) {
          setError("a silence needs at least one matcher");
          return;
        }
        const h = Number(hours);
        if (!(h > 0)) {
          setError(`duration "${hours}" should be a number of hours above 0`);
          return;
        }
        localStorage.setItem("sextant.user", createdBy);
        try {
          await send("POST", "/api/v1/silences", { matchers: parsed, startsAt: new Date().toISOString(), endsAt: new Date(Date.now() + h * 3600e3).toISOString(), createdBy: createdBy || "sextant-ui", comment });
          props.onDone();
        } catch (err) {
          setError((err as Error).message);
        }
      }}
    >
      <label>
        Matchers <input value={matchers} onInput={(e) => setMatchers(e.currentTarget.value)} placeholder='alertname="QueueBacklog", severity="page"' />
      </label>
      <label>
        Hours <input class="short" value={hours} onInput={(e) => setHours(e.currentTarget.value)} />
      </label>
      <label>
        Created by <input value={createdBy} onInput={(e) => setCreatedBy(e.currentTarget.value)} />
      </label>
      <label>
        Comment <input value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
      </label>
      <button type="submit">Create silence</button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

const EXAMPLE_GROUP = `name: queue
interval: 30s
rules:
  - alert: QueueBacklog
    expr: avg_over_time(rabbitmq_queue_messages[1m]) > 100
    labels:
      severity: task
    annotations:
      message: Messages accumulating in the queue
`;

/** A rule group written here goes through the ruler API (POST /api/v1/rules/{namespace}), validated as rule files are. */
function GroupEditor(props: { onDone: () => void }) {
  const [namespace, setNamespace] = useState("ui");
  const [yaml, setYaml] = useState(EXAMPLE_GROUP);
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      class="groupeditor"
      aria-label="Rule group"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(null);
        const response = await fetch(`/api/v1/rules/${encodeURIComponent(namespace.trim())}`, { method: "POST", headers: { "Content-Type": "application/yaml" }, body: yaml });
        if (!response.ok) {
          const text = await response.text();
          try {
            setError(JSON.parse(text).error ?? text);
          } catch {
            setError(text);
          }
          return;
        }
        props.onDone();
      }}
    >
      <label>
        Namespace <input value={namespace} onInput={(e) => setNamespace(e.currentTarget.value)} />
      </label>
      <label class="wide">
        Group (YAML, as in a Prometheus rule file; log rules too)
        <textarea rows={12} spellcheck={false} value={yaml} onInput={(e) => setYaml(e.currentTarget.value)} />
      </label>
      <button type="submit">Save group</button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

/** Rules with their state, firing and pending alerts, a rule's history over its graph, silences. */
export function AlertsPage() {
  const { params } = useLocation();
  const selected = params.get("rule");
  const [tick, setTick] = useState(0);
  const [silencing, setSilencing] = useState<string | null>(null);
  const [editing, setEditing] = useState(false);
  const groups = useLoad(`rules ${tick}`, (signal) => prom<{ groups: RuleGroup[] }>("/api/v1/rules", {}, signal).then((d) => d.groups));
  const silences = useLoad(`silences ${tick}`, (signal) => getJson<Silence[] | PromEnvelope<Silence[]>>("/api/v1/silences", {}, signal).then((b) => (Array.isArray(b) ? b : b.data)));
  const refresh = () => setTick((n) => n + 1);
  const rules = groups.state === "done" ? groups.value.flatMap((g) => g.rules.map((r) => ({ group: g, rule: r }))) : [];
  const active = rules.flatMap(({ rule }) => (rule.alerts ?? []).map((a) => ({ rule, alert: a }))).filter(({ alert }) => alert.state === "firing" || alert.state === "pending" || alert.state === "nodata");
  const chosen = rules.find(({ rule }) => rule.name === selected)?.rule;
  return (
    <section class="page alerts">
      <h1>Alerts</h1>
      <button type="button" class="refresh" onClick={refresh}>
        Refresh
      </button>
      <h2>Firing and pending</h2>
      <Status load={groups} empty={() => (active.length === 0 ? "Nothing is firing or pending." : null)}>
        {() => (
          <table class="active" aria-label="Active alerts">
            <thead>
              <tr>
                <th>State</th>
                <th>Alert</th>
                <th>Labels</th>
                <th>Since</th>
                <th>Value</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {active.map(({ rule, alert }, i) => (
                <tr key={i}>
                  <td>
                    <span class={`state s-${alert.state}`}>{alert.state}</span>
                  </td>
                  <td>
                    <a href={href("/ui/alerts", { rule: rule.name })}>{rule.name}</a>
                    {alert.annotations.summary && <div class="note">{alert.annotations.summary}</div>}
                  </td>
                  <td>
                    <code>{labelText(alert.labels)}</code>
                  </td>
                  <td class="ts">{alert.activeAt ? formatTime(parseTs(alert.activeAt), false) : ""}</td>
                  <td>{alert.value}</td>
                  <td>
                    <button type="button" onClick={() => setSilencing(labelText(alert.labels))}>
                      Silence
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Status>
      {silencing !== null && (
        <SilenceForm
          key={silencing}
          matchers={silencing}
          onDone={() => {
            setSilencing(null);
            refresh();
          }}
        />
      )}
      {chosen && (
        <>
          <h2>
            History of {chosen.name}{" "}
            <button type="button" class="link" onClick={() => setParams({ rule: null })}>
              close
            </button>
          </h2>
          <p class="note">
            <code>{chosen.query}</code>
          </p>
          <RuleHistory key={`${chosen.name} ${tick}`} rule={chosen} />
        </>
      )}
      <h2>Rules</h2>
      <button type="button" onClick={() => setEditing(!editing)} aria-expanded={editing}>
        {editing ? "Close the editor" : "New or changed rule group"}
      </button>
      {editing && (
        <GroupEditor
          onDone={() => {
            setEditing(false);
            refresh();
          }}
        />
      )}
      <Status load={groups} empty={(g) => (g.length === 0 ? "No rules: add Prometheus rule files under rule_files in the config." : null)}>
        {(list) => (
          <table class="rules" aria-label="Rules">
            <thead>
              <tr>
                <th>Group</th>
                <th>Rule</th>
                <th>State</th>
                <th>Health</th>
                <th>Last evaluation</th>
                <th>Took</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.flatMap((g) =>
                g.rules.map((r) => (
                  <tr key={`${g.file} ${g.name} ${r.name}`}>
                    <td>{g.name}</td>
                    <td>
                      {r.type === "alerting" ? <a href={href("/ui/alerts", { rule: r.name })}>{r.name}</a> : <a href={href("/ui/metrics", { expr: r.name })}>{r.name}</a>}
                      <div class="note">
                        <code>{r.query}</code>
                      </div>
                    </td>
                    <td>{r.type === "alerting" ? <span class={`state s-${r.state}`}>{r.state}</span> : "recording"}</td>
                    <td class={r.health === "ok" ? "" : "err"} title={r.lastError ?? ""}>
                      {r.health}
                      {r.lastError ? `: ${r.lastError}` : ""}
                    </td>
                    <td class="ts">{r.lastEvaluation.startsWith("0001") ? "not yet" : formatTime(parseTs(r.lastEvaluation), false)}</td>
                    <td>{(r.evaluationTime * 1000).toFixed(1)} ms</td>
                    <td>
                      {/* Rule files have absolute paths; a namespace made through the ruler API does not. */}
                      {!g.file.startsWith("/") && r === g.rules[0] && (
                        <button
                          type="button"
                          title={`Delete group ${g.name} of namespace ${g.file} (ruler API)`}
                          onClick={async () => {
                            await send("DELETE", `/api/v1/rules/${encodeURIComponent(g.file)}/${encodeURIComponent(g.name)}`);
                            refresh();
                          }}
                        >
                          Delete group
                        </button>
                      )}
                    </td>
                  </tr>
                )),
              )}
            </tbody>
          </table>
        )}
      </Status>
      <h2>Silences</h2>
      <button type="button" onClick={() => setSilencing("")}>
        New silence
      </button>
      <Status load={silences} empty={(s) => (s.length === 0 ? "No silences." : null)}>
        {(list) => (
          <table class="silences" aria-label="Silences">
            <thead>
              <tr>
                <th>State</th>
                <th>Matchers</th>
                <th>Ends</th>
                <th>By</th>
                <th>Comment</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.map((s) => (
                <tr key={s.id}>
                  <td>
                    <span class={`state s-${s.status.state}`}>{s.status.state}</span>
                  </td>
                  <td>
                    <code>{s.matchers.map((m) => `${m.name}${m.isEqual === false ? "!" : ""}${m.isRegex ? "~" : "="}"${m.value}"`.replace("!~", "!~").replace("=~", "=~")).join(", ")}</code>
                  </td>
                  <td class="ts">{formatTime(parseTs(s.endsAt), false)}</td>
                  <td>{s.createdBy}</td>
                  <td>{s.comment}</td>
                  <td>
                    {s.status.state !== "expired" && (
                      <button
                        type="button"
                        onClick={async () => {
                          await send("DELETE", `/api/v1/silences/${encodeURIComponent(s.id)}`);
                          refresh();
                        }}
                      >
                        Expire
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Status>
    </section>
  );
}
