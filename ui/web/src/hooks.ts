import { useEffect, useRef, useState } from "preact/hooks";

export type Load<T> = { state: "idle" } | { state: "loading" } | { state: "done"; value: T } | { state: "error"; error: string };

/** Runs `load` whenever `key` changes (no run while `key` is null), cancelling the one before. */
export function useLoad<T>(key: string | null, load: (signal: AbortSignal) => Promise<T>): Load<T> {
  const [result, setResult] = useState<Load<T>>({ state: "idle" });
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    if (key === null) {
      setResult({ state: "idle" });
      return;
    }
    const controller = new AbortController();
    setResult({ state: "loading" });
    loader
      .current(controller.signal)
      .then((value) => {
        if (!controller.signal.aborted) setResult({ state: "done", value });
      })
      .catch((e: Error) => {
        if (!controller.signal.aborted) setResult({ state: "error", error: e.message });
      });
    return () => controller.abort();
  }, [key]);
  return result;
}
