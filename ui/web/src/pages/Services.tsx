import { type InstantSample, getJson, prom } from "../api";
import { Status } from "../components/Status";
import { useLoad } from "../hooks";
import { href, setParams, useLocation } from "../url";

const SPAN_QUERIES = {
  traffic: "sum by (service) (rate(traces_spanmetrics_calls_total[W]))",
  errors: 'sum by (service) (rate(traces_spanmetrics_calls_total{status_code="STATUS_CODE_ERROR"}[W]))',
  p50: "histogram_quantile(0.5, sum by (le, service) (rate(traces_spanmetrics_latency_bucket[W])))",
  p90: "histogram_quantile(0.9, sum by (le, service) (rate(traces_spanmetrics_latency_bucket[W])))",
  p99: "histogram_quantile(0.99, sum by (le, service) (rate(traces_spanmetrics_latency_bucket[W])))",
};

type Row = Record<keyof typeof SPAN_QUERIES, number | undefined>;

const fmtRate = (v?: number) => (v === undefined || Number.isNaN(v) ? "–" : `${v < 10 ? v.toFixed(2) : v.toFixed(0)}/s`);
const fmtSeconds = (v?: number) => (v === undefined || Number.isNaN(v) ? "–" : v < 1 ? `${(v * 1000).toFixed(1)} ms` : `${v.toFixed(2)} s`);

function graphLink(expr: string, legend: string) {
  return href("/ui/metrics", { expr, legend, from: "now-1h", to: "now" });
}

/** The golden signals per service: traffic, errors and latency from span metrics, and the StatsD timers beside them. */
export function ServicesPage() {
  const { params } = useLocation();
  const rateWindow = params.get("window") ?? "5m";
  const spans = useLoad(`spans ${rateWindow}`, async (signal) => {
    const rows = new Map<string, Row>();
    await Promise.all(
      Object.entries(SPAN_QUERIES).map(async ([name, q]) => {
        const data = await prom<{ result: InstantSample[] }>("/api/v1/query", { query: q.replace("[W]", `[${rateWindow}]`) }, signal);
        for (const s of data.result) {
          const service = s.metric.service ?? "";
          const row = rows.get(service) ?? ({} as Row);
          row[name as keyof Row] = Number(s.value[1]);
          rows.set(service, row);
        }
      }),
    );
    return [...rows].sort((a, b) => a[0].localeCompare(b[0]));
  });
  const timers = useLoad(`timers ${rateWindow}`, async (signal) => {
    const meta = await getJson<{ data: Record<string, { type: string }[]> }>("/api/v1/metadata", {}, signal);
    const summaries = Object.entries(meta.data)
      .filter(([, m]) => m.some((x) => x.type === "summary"))
      .map(([name]) => name)
      .sort()
      .slice(0, 50);
    return Promise.all(
      summaries.map(async (name) => {
        const [quantiles, rate] = await Promise.all([
          prom<{ result: InstantSample[] }>("/api/v1/query", { query: `${name}{quantile=~"0.5|0.9|0.99"}` }, signal),
          prom<{ result: InstantSample[] }>("/api/v1/query", { query: `sum(rate(${name}_count[${rateWindow}]))` }, signal),
        ]);
        const q = (want: string) => {
          const values = quantiles.result.filter((s) => s.metric.quantile === want).map((s) => Number(s.value[1]));
          return values.length ? Math.max(...values) : undefined;
        };
        return { name, rate: rate.result[0] ? Number(rate.result[0].value[1]) : undefined, p50: q("0.5"), p90: q("0.9"), p99: q("0.99") };
      }),
    );
  });
  return (
    <section class="page services">
      <h1>Services</h1>
      <label>
        Rate window{" "}
        <select value={rateWindow} onChange={(e) => setParams({ window: e.currentTarget.value })}>
          {["1m", "5m", "15m", "1h"].map((w) => (
            <option key={w}>{w}</option>
          ))}
        </select>
      </label>
      <h2>From traces (span metrics)</h2>
      <Status load={spans} empty={(v) => (v.length === 0 ? "No span metrics yet: services that send OTLP spans appear here." : null)}>
        {(rows) => (
          <table class="golden" aria-label="Golden signals per service">
            <thead>
              <tr>
                <th>Service</th>
                <th>Traffic</th>
                <th>Errors</th>
                <th>Error ratio</th>
                <th>p50</th>
                <th>p90</th>
                <th>p99</th>
              </tr>
            </thead>
            <tbody>
              {rows.map(([service, r]) => {
                const ratio = r.traffic ? (r.errors ?? 0) / r.traffic : undefined;
                const sel = `service="${service}"`;
                return (
                  <tr key={service}>
                    <th scope="row">
                      <a href={href("/ui/traces", { service })}>{service}</a>
                    </th>
                    <td>
                      <a href={graphLink(`sum by (span_name) (rate(traces_spanmetrics_calls_total{${sel}}[${rateWindow}]))`, "{{span_name}}")}>{fmtRate(r.traffic)}</a>
                    </td>
                    <td>
                      <a href={graphLink(`sum by (span_name) (rate(traces_spanmetrics_calls_total{${sel},status_code="STATUS_CODE_ERROR"}[${rateWindow}]))`, "{{span_name}}")}>{fmtRate(r.errors ?? 0)}</a>
                    </td>
                    <td class={ratio && ratio > 0.01 ? "err" : ""}>{ratio === undefined ? "–" : `${(ratio * 100).toFixed(2)} %`}</td>
                    {(["p50", "p90", "p99"] as const).map((p) => (
                      <td key={p}>
                        <a href={graphLink(`histogram_quantile(0.${p.slice(1)}, sum by (le, span_name) (rate(traces_spanmetrics_latency_bucket{${sel}}[${rateWindow}])))`, `{{span_name}} ${p}`)}>{fmtSeconds(r[p])}</a>
                      </td>
                    ))}
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Status>
      <h2>StatsD timers (summaries)</h2>
      <Status load={timers} empty={(v) => (v.length === 0 ? "No timers yet: StatsD `ms` metrics appear here as summaries." : null)}>
        {(rows) => (
          <table class="golden" aria-label="Timers">
            <thead>
              <tr>
                <th>Timer</th>
                <th>Rate</th>
                <th>p50</th>
                <th>p90</th>
                <th>p99</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((t) => (
                <tr key={t.name}>
                  <th scope="row">
                    <a href={graphLink(`${t.name}{quantile=~"0.5|0.9|0.99"}`, "p{{quantile}}")}>{t.name}</a>
                  </th>
                  <td>{fmtRate(t.rate)}</td>
                  <td>{fmtSeconds(t.p50)}</td>
                  <td>{fmtSeconds(t.p90)}</td>
                  <td>{fmtSeconds(t.p99)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Status>
    </section>
  );
}
