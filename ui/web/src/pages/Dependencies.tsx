import { type Jaeger, getJson } from "../api";
import { Status } from "../components/Status";
import { useLoad } from "../hooks";
import { setParams, useLocation } from "../url";

interface Edge {
  parent: string;
  child: string;
  callCount: number;
}

/** Services in columns by their depth from the callers nobody calls; cycles stop at the first visit. */
function layout(edges: Edge[]) {
  const names = [...new Set(edges.flatMap((e) => [e.parent, e.child]))].sort();
  const depth = new Map<string, number>();
  const callers = new Set(edges.map((e) => e.child));
  let frontier = names.filter((n) => !callers.has(n));
  if (frontier.length === 0) frontier = names.slice(0, 1);
  for (const n of frontier) depth.set(n, 0);
  for (let d = 0; frontier.length > 0 && d < names.length; d++) {
    const next: string[] = [];
    for (const e of edges) {
      if (frontier.includes(e.parent) && !depth.has(e.child)) {
        depth.set(e.child, d + 1);
        next.push(e.child);
      }
    }
    frontier = next;
  }
  for (const n of names) if (!depth.has(n)) depth.set(n, 0);
  const columns: string[][] = [];
  for (const n of names) (columns[depth.get(n)!] ??= []).push(n);
  const pos = new Map<string, { x: number; y: number }>();
  columns.forEach((col, c) => col.forEach((n, r) => pos.set(n, { x: 40 + c * 220, y: 40 + r * 80 })));
  const width = 40 + columns.length * 220;
  const height = 40 + Math.max(...columns.map((c) => c.length)) * 80;
  return { names, pos, width, height };
}

/** Jaeger's service dependency graph: who calls whom, with call counts, over a lookback. */
export function DependencyGraph() {
  const { params } = useLocation();
  const lookback = params.get("lookback") ?? "1h";
  const ms = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 86400e3, "7d": 7 * 86400e3 }[lookback] ?? 3600e3;
  const deps = useLoad(lookback, (signal) => getJson<Jaeger<Edge[] | null>>("/jaeger/api/dependencies", { endTs: Date.now(), lookback: ms }, signal).then((b) => b.data ?? []));
  return (
    <div class="deps">
      <label>
        Lookback{" "}
        <select value={lookback} onChange={(e) => setParams({ lookback: e.currentTarget.value })}>
          {["1h", "6h", "24h", "7d"].map((l) => (
            <option key={l}>{l}</option>
          ))}
        </select>
      </label>
      <Status load={deps} empty={(v) => (v.length === 0 ? "No calls between services in this lookback: spans of different services with parent references make the graph." : null)}>
        {(edges) => {
          const { names, pos, width, height } = layout(edges);
          return (
            <svg class="graph" width={width} height={height} role="img" aria-label="Service dependency graph">
              <defs>
                <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">
                  <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
                </marker>
              </defs>
              {edges.map((e) => {
                const a = pos.get(e.parent)!;
                const b = pos.get(e.child)!;
                const x1 = a.x + 150;
                const y1 = a.y + 18;
                const x2 = b.x;
                const y2 = b.y + 18;
                return (
                  <g key={`${e.parent}->${e.child}`} class="edge">
                    <path d={`M ${x1} ${y1} C ${x1 + 40} ${y1}, ${x2 - 40} ${y2}, ${x2} ${y2}`} marker-end="url(#arrow)" />
                    <text x={(x1 + x2) / 2} y={(y1 + y2) / 2 - 6}>
                      {e.callCount}
                    </text>
                  </g>
                );
              })}
              {names.map((n) => {
                const p = pos.get(n)!;
                return (
                  <g key={n} class="node" transform={`translate(${p.x},${p.y})`}>
                    <rect width="150" height="36" rx="6" />
                    <text x="75" y="23">
                      {n}
                    </text>
                  </g>
                );
              })}
            </svg>
          );
        }}
      </Status>
    </div>
  );
}
