import type { ComponentChildren } from "preact";
import type { Load } from "../hooks";

/** Loading, error and empty states in plain words; the content otherwise. */
export function Status<T>(props: {
  load: Load<T>;
  idle?: string;
  empty?: (value: T) => string | null;
  children: (value: T) => ComponentChildren;
}) {
  const { load } = props;
  if (load.state === "idle") return props.idle ? <p class="note">{props.idle}</p> : null;
  if (load.state === "loading") return <p class="note loading" role="status">Loading…</p>;
  if (load.state === "error")
    return (
      <p class="error" role="alert">
        {load.error}
      </p>
    );
  const empty = props.empty?.(load.value);
  if (empty) return <p class="note empty">{empty}</p>;
  return <>{props.children(load.value)}</>;
}
