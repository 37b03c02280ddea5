import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";

/**
 * A list that renders only the rows near the window's viewport: thousands
 * of log lines cost the DOM of a screenful. Rows may change height (a line
 * expands); each rendered row is measured, unmeasured ones are estimated.
 */
export function VirtualList<T>(props: {
  items: T[];
  itemKey: (item: T, index: number) => string;
  render: (item: T, index: number) => ComponentChildren;
  label: string;
  class?: string;
  /** Height in px assumed for a row not measured yet. */
  estimate?: number;
}) {
  const estimate = props.estimate ?? 30;
  const list = useRef<HTMLUListElement>(null);
  const heights = useRef(new Map<string, number>());
  const [, setTick] = useState(0);
  const observer = useRef<ResizeObserver | null>(null);
  useEffect(() => {
    let frame = 0;
    const update = () => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        setTick((n) => n + 1);
      });
    };
    observer.current = new ResizeObserver((entries) => {
      let changed = false;
      for (const entry of entries) {
        const key = (entry.target as HTMLElement).dataset.key!;
        const h = (entry.target as HTMLElement).offsetHeight;
        if (h > 0 && heights.current.get(key) !== h) {
          heights.current.set(key, h);
          changed = true;
        }
      }
      if (changed) update();
    });
    window.addEventListener("scroll", update, { passive: true });
    window.addEventListener("resize", update);
    return () => {
      observer.current?.disconnect();
      window.removeEventListener("scroll", update);
      window.removeEventListener("resize", update);
      cancelAnimationFrame(frame);
    };
  }, []);
  // Rows rendered in this pass are observed once they are in the DOM.
  useLayoutEffect(() => {
    const el = list.current;
    if (!el || !observer.current) return;
    for (const row of el.querySelectorAll<HTMLElement>(":scope > li[data-key]")) observer.current.observe(row);
  });

  const top = list.current ? list.current.getBoundingClientRect().top : 0;
  const viewTop = -top - 600;
  const viewBottom = -top + window.innerHeight + 600;
  const keys = props.items.map(props.itemKey);
  let offset = 0;
  let first = -1;
  let last = -1;
  let before = 0;
  for (let i = 0; i < keys.length; i++) {
    const h = heights.current.get(keys[i]) ?? estimate;
    if (first < 0 && offset + h >= viewTop) {
      first = i;
      before = offset;
    }
    if (first >= 0 && offset <= viewBottom) last = i;
    offset += h;
  }
  if (first < 0) {
    first = keys.length;
    before = offset;
  }
  let after = 0;
  for (let i = last + 1; i < keys.length; i++) after += heights.current.get(keys[i]) ?? estimate;
  const shown = last >= first ? props.items.slice(first, last + 1) : [];
  return (
    <ul ref={list} class={props.class} aria-label={props.label} aria-rowcount={props.items.length}>
      {before > 0 && <li class="spacer" aria-hidden="true" style={{ height: `${before}px` }} />}
      {shown.map((item, j) => (
        <li key={keys[first + j]} data-key={keys[first + j]} class="row">
          {props.render(item, first + j)}
        </li>
      ))}
      {after > 0 && <li class="spacer" aria-hidden="true" style={{ height: `${after}px` }} />}
    </ul>
  );
}
