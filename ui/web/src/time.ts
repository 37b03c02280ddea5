// Time ranges as Grafana and Kibana write them: `now-1h` to `now`, or
// absolute instants; shown in the browser's zone or in UTC.

export interface Range {
  from: string;
  to: string;
}

export const QUICK_RANGES: { label: string; from: string }[] = [
  { label: "Last 5 minutes", from: "now-5m" },
  { label: "Last 15 minutes", from: "now-15m" },
  { label: "Last 1 hour", from: "now-1h" },
  { label: "Last 6 hours", from: "now-6h" },
  { label: "Last 24 hours", from: "now-24h" },
  { label: "Last 7 days", from: "now-7d" },
];

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** Milliseconds since the epoch of `text` (`now`, `now-15m`, RFC 3339, or epoch seconds); null when unreadable. */
export function resolve(text: string, now = Date.now()): number | null {
  const t = text.trim();
  const relative = /^now(?:\s*-\s*(\d+)\s*([smhdw]))?$/.exec(t);
  if (relative) return relative[1] ? now - Number(relative[1]) * UNITS[relative[2]] : now;
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

export function resolveRange(range: Range): { start: number; end: number } | string {
  const start = resolve(range.from);
  const end = resolve(range.to);
  if (start === null) return `"${range.from}" is not a time: use now-1h, 2026-11-28T10:00:00Z or epoch seconds`;
  if (end === null) return `"${range.to}" is not a time: use now, 2026-11-28T11:00:00Z or epoch seconds`;
  if (start >= end) return "the start of the range must be before its end";
  return { start, end };
}

export function rangeLabel(range: Range): string {
  if (range.to === "now") {
    const quick = QUICK_RANGES.find((q) => q.from === range.from);
    if (quick) return quick.label;
  }
  const show = (t: string) => {
    if (t.startsWith("now")) return t;
    const ms = resolve(t);
    return ms === null ? t : formatTime(ms, false);
  };
  return `${show(range.from)} to ${show(range.to)}`;
}

let utc = localStorage.getItem("sextant.utc") === "1";
export function isUtc(): boolean {
  return utc;
}
export function setUtc(value: boolean) {
  utc = value;
  localStorage.setItem("sextant.utc", value ? "1" : "0");
}
export function zoneName(): string {
  return utc ? "UTC" : Intl.DateTimeFormat().resolvedOptions().timeZone;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** `2026-11-28 10:15:02.123` in the chosen zone; `micros` adds µs when the source has them. */
export function formatTime(ms: number, withMs = true): string {
  const d = new Date(ms);
  const [y, mo, da, h, mi, s, milli] = utc
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()];
  const base = `${y}-${pad(mo)}-${pad(da)} ${pad(h)}:${pad(mi)}:${pad(s)}`;
  return withMs ? `${base}.${pad(milli, 3)}` : base;
}

/** An RFC 3339 timestamp (as the APIs give them) in ms. */
export function parseTs(text: string): number {
  return Date.parse(text);
}

/** A duration in µs as Jaeger shows it: 512µs, 12.3ms, 1.52s. */
export function formatDuration(us: number): string {
  if (us < 1000) return `${Math.round(us)}µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)}ms`;
  if (us < 60e6) return `${(us / 1e6).toFixed(2)}s`;
  return `${(us / 60e6).toFixed(1)}min`;
}

/** A step that gives about `points` points over the range, rounded to a readable size, in seconds. */
export function autoStep(startMs: number, endMs: number, points = 250): number {
  const raw = (endMs - startMs) / 1000 / points;
  const nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
  return nice.find((n) => n >= raw) ?? Math.ceil(raw / 86400) * 86400;
}
