import { useState } from "preact/hooks";
import { QUICK_RANGES, type Range, isUtc, rangeLabel, setUtc, zoneName } from "../time";

/** Quick ranges, a custom from/to (relative or absolute), and the zone times are shown in. */
export function TimePicker(props: { range: Range; onChange: (r: Range) => void; onZone?: () => void }) {
  const [open, setOpen] = useState(false);
  const [from, setFrom] = useState(props.range.from);
  const [to, setTo] = useState(props.range.to);
  return (
    <div class="timepicker">
      <button type="button" class="range" aria-expanded={open} onClick={() => { setFrom(props.range.from); setTo(props.range.to); setOpen(!open); }} title="Time range">
        {rangeLabel(props.range)} ▾
      </button>
      {open && (
        <div class="popover" role="dialog" aria-label="Time range" onKeyDown={(e) => e.key === "Escape" && setOpen(false)}>
          <div class="quick">
            {QUICK_RANGES.map((q) => (
              <button type="button" key={q.from} onClick={() => { props.onChange({ from: q.from, to: "now" }); setOpen(false); }}>
                {q.label}
              </button>
            ))}
          </div>
          <form
            class="custom"
            onSubmit={(e) => {
              e.preventDefault();
              props.onChange({ from: from.trim(), to: to.trim() });
              setOpen(false);
            }}
          >
            <label>
              From <input name="from" value={from} onInput={(e) => setFrom(e.currentTarget.value)} placeholder="now-1h or 2026-11-28T10:00:00Z" />
            </label>
            <label>
              To <input name="to" value={to} onInput={(e) => setTo(e.currentTarget.value)} placeholder="now" />
            </label>
            <button type="submit">Apply</button>
          </form>
          <label class="zone">
            <input
              type="checkbox"
              checked={isUtc()}
              onChange={(e) => {
                setUtc(e.currentTarget.checked);
                props.onZone?.();
              }}
            />{" "}
            Show times in UTC (now: {zoneName()})
          </label>
        </div>
      )}
    </div>
  );
}
