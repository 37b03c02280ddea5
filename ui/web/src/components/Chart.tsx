import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatTime } from "../time";

export interface ChartSeries {
  label: string;
  values: (number | null)[];
  color?: string;
  dash?: number[];
}

/** A band over the chart's background: `[fromSec, toSec, colour]` (alert states). */
export type Band = [number, number, string];

/** A marked point over the lines (an exemplar): x in seconds, y in the chart's units. */
export interface Mark {
  t: number;
  value: number;
  title: string;
}

const PALETTE = ["#3b82f6", "#e8833a", "#10b981", "#ef4444", "#8b5cf6", "#eab308", "#06b6d4", "#ec4899", "#84cc16", "#64748b"];
export const colorOf = (i: number) => PALETTE[i % PALETTE.length];

/**
 * A uPlot chart: lines, bars (a histogram) or points (a scatter), x in
 * seconds. Dragging across it selects a range (`onSelect`), clicking a
 * point reports it (`onPick`).
 */
export function Chart(props: {
  xs: number[];
  series: ChartSeries[];
  kind?: "line" | "bars" | "points";
  height?: number;
  bands?: Band[];
  /** The x axis's span in seconds (the query's range), else the data's. */
  xRange?: [number, number];
  yLabel?: string;
  onSelect?: (fromSec: number, toSec: number) => void;
  onPick?: (seriesIndex: number, index: number) => void;
  /** Diamonds drawn over the lines; clicking one reports it (`onMark`). */
  marks?: Mark[];
  onMark?: (mark: Mark) => void;
  label: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const handlers = useRef(props);
  handlers.current = props;
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const kind = props.kind ?? "line";
    const dark = document.documentElement.dataset.theme === "dark";
    const axis = { stroke: dark ? "#cbd5e1" : "#334155", grid: { stroke: dark ? "#334155" : "#e2e8f0", width: 1 }, ticks: { show: false } };
    const paths = kind === "bars" ? uPlot.paths.bars!({ size: [0.9, 60] }) : kind === "points" ? () => null : undefined;
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 300),
      height: props.height ?? 240,
      legend: { show: kind === "line" && props.series.length <= 20 },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { show: kind !== "bars" } },
      scales: {
        x: props.xRange ? { time: true, range: () => props.xRange! } : { time: true },
        // Marks (exemplars) widen the y axis so each is seen, as Grafana's are.
        ...(props.marks?.length
          ? {
              y: {
                range: (_u: uPlot, min: number | null, max: number | null): uPlot.Range.MinMax => {
                  const values = props.marks!.map((m) => m.value).filter(Number.isFinite);
                  const lo = Math.min(min ?? Infinity, ...values);
                  const hi = Math.max(max ?? -Infinity, ...values);
                  return uPlot.rangeNum(lo, hi, 0.1, true);
                },
              },
            }
          : {}),
      },
      axes: [{ ...axis }, { ...axis, label: props.yLabel, size: 60 }],
      series: [
        { value: (_u, v) => (v == null ? "" : formatTime(v * 1000, false)) },
        ...props.series.map((s, i) => ({
          label: s.label,
          stroke: s.color ?? colorOf(i),
          fill: kind === "bars" ? (s.color ?? colorOf(i)) + "aa" : undefined,
          width: kind === "points" ? 0 : 1.5,
          dash: s.dash,
          paths,
          // Lines show their points only where they are far apart (uPlot's
          // default), so a lone sample between gaps is still seen.
          points: kind === "points" ? { show: true, size: 7, fill: s.color ?? colorOf(i) } : kind === "bars" ? { show: false } : undefined,
          spanGaps: false,
        })),
      ],
      hooks: {
        setSelect: [
          (u: uPlot) => {
            if (u.select.width < 4) return;
            const from = u.posToVal(u.select.left, "x");
            const to = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            handlers.current.onSelect?.(from, to);
          },
        ],
        drawClear: [
          (u: uPlot) => {
            const bands = handlers.current.bands;
            if (!bands) return;
            const { ctx, bbox } = u;
            ctx.save();
            for (const [from, to, color] of bands) {
              const x0 = Math.max(u.valToPos(from, "x", true), bbox.left);
              const x1 = Math.min(u.valToPos(to, "x", true), bbox.left + bbox.width);
              if (x1 <= x0) continue;
              ctx.fillStyle = color;
              ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height);
            }
            ctx.restore();
          },
        ],
      },
    };
    // From making the chart to its first drawing (uPlot draws in a
    // microtask after it is made): User Timing, read by bench/ui.
    const drawing = performance.now();
    const points = props.xs.length * props.series.length;
    let drawn = false;
    opts.hooks!.draw = [
      () => {
        if (drawn) return;
        drawn = true;
        performance.measure("chart:draw", { start: drawing, detail: { points } });
      },
      (u: uPlot) => {
        const marks = handlers.current.marks;
        if (!marks?.length) return;
        const { ctx, bbox } = u;
        ctx.save();
        ctx.fillStyle = dark ? "#fbbf24" : "#b45309";
        ctx.strokeStyle = dark ? "#0f172a" : "#ffffff";
        const r = 5 * devicePixelRatio;
        for (const m of marks) {
          const x = u.valToPos(m.t, "x", true);
          const y = u.valToPos(m.value, "y", true);
          if (x < bbox.left || x > bbox.left + bbox.width || y < bbox.top || y > bbox.top + bbox.height) continue;
          ctx.beginPath();
          ctx.moveTo(x, y - r);
          ctx.lineTo(x + r, y);
          ctx.lineTo(x, y + r);
          ctx.lineTo(x - r, y);
          ctx.closePath();
          ctx.fill();
          ctx.stroke();
        }
        ctx.restore();
      },
    ];
    const u = new uPlot(opts, [props.xs, ...props.series.map((s) => s.values)] as uPlot.AlignedData, el);
    plot.current = u;
    /** The mark under the cursor, within a few pixels. */
    const markAt = (left: number, top: number) =>
      (handlers.current.marks ?? []).find((m) => Math.abs(u.valToPos(m.t, "x") - left) <= 7 && Math.abs(u.valToPos(m.value, "y") - top) <= 7);
    const click = () => {
      const mark = markAt(u.cursor.left ?? -100, u.cursor.top ?? -100);
      if (mark && handlers.current.onMark) {
        handlers.current.onMark(mark);
        return;
      }
      const idx = u.cursor.idx;
      if (idx == null || !handlers.current.onPick) return;
      // The nearest series at the cursor: the one whose value is closest to it.
      const top = u.cursor.top ?? 0;
      let best = -1;
      let bestDist = 12;
      u.series.forEach((_, si) => {
        if (si === 0) return;
        const v = u.data[si][idx];
        if (v == null) return;
        const d = Math.abs(u.valToPos(v as number, "y") - top);
        if (d < bestDist) {
          bestDist = d;
          best = si - 1;
        }
      });
      if (best >= 0) handlers.current.onPick(best, idx);
    };
    u.over.addEventListener("click", click);
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(el.clientWidth, 300), height: props.height ?? 240 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [props.xs, props.series, props.kind, props.bands, props.marks]);
  return <div class="chart" ref={box} role="img" aria-label={props.label} />;
}
