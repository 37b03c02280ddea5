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
      scales: { x: props.xRange ? { time: true, range: () => props.xRange! } : { time: true } },
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
    ];
    const u = new uPlot(opts, [props.xs, ...props.series.map((s) => s.values)] as uPlot.AlignedData, el);
    plot.current = u;
    const click = () => {
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
  }, [props.xs, props.series, props.kind, props.bands]);
  return <div class="chart" ref={box} role="img" aria-label={props.label} />;
}
