import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";

export interface Suggestion {
  text: string;
  hint?: string;
  /** A prefix to keep typing after (a field name and its colon), not a finished token. */
  partial?: boolean;
}

/** The token the caret is in: from the last space, bracket or operator before it. */
function tokenAt(text: string, caret: number): [number, string] {
  let start = caret;
  while (start > 0 && !/[\s(),{}=!~]/.test(text[start - 1])) start--;
  return [start, text.slice(start, caret)];
}

/**
 * A query input with completion: `suggest` gets the token at the caret and
 * returns replacements; arrows move, Enter or Tab takes one, Escape closes,
 * Enter without a choice runs the query (Shift+Enter for a new line).
 */
export function QueryBar(props: {
  value: string;
  label: string;
  placeholder?: string;
  multiline?: boolean;
  suggest: (token: string, text: string, start: number) => Suggestion[];
  /** Changes when what `suggest` knows changes (names loaded): the open list is recomputed. */
  version?: number;
  onSubmit: (text: string) => void;
}) {
  const [text, setText] = useState(props.value);
  const [items, setItems] = useState<Suggestion[]>([]);
  const [active, setActive] = useState(0);
  const input = useRef<HTMLTextAreaElement>(null);
  const pendingCaret = useRef<number | null>(null);
  useEffect(() => setText(props.value), [props.value]);
  useEffect(() => {
    const el = input.current;
    if (el && document.activeElement === el) refresh(el.value, el.selectionStart ?? el.value.length);
  }, [props.version]);
  const refresh = (value: string, caret: number) => {
    const [start, token] = tokenAt(value, caret);
    setItems(token.length === 0 ? [] : props.suggest(token, value, start).slice(0, 12));
    setActive(0);
  };
  const take = (s: Suggestion) => {
    const el = input.current!;
    const caret = el.selectionStart ?? text.length;
    const [start] = tokenAt(text, caret);
    const next = text.slice(0, start) + s.text + text.slice(caret);
    setText(next);
    pendingCaret.current = start + s.text.length;
    setItems([]);
    if (s.partial) refresh(next, pendingCaret.current);
  };
  // The caret goes after what was taken as soon as the new text is in
  // place, before the next key lands.
  useLayoutEffect(() => {
    const el = input.current;
    if (el && pendingCaret.current !== null) {
      el.focus();
      el.setSelectionRange(pendingCaret.current, pendingCaret.current);
      pendingCaret.current = null;
    }
  }, [text]);
  return (
    <form
      class="querybar"
      onSubmit={(e) => {
        e.preventDefault();
        setItems([]);
        props.onSubmit(text);
      }}
    >
      <div class="combo">
        <textarea
          ref={input}
          aria-label={props.label}
          aria-autocomplete="list"
          aria-expanded={items.length > 0}
          rows={props.multiline ? Math.min(6, Math.max(1, text.split("\n").length)) : 1}
          spellcheck={false}
          placeholder={props.placeholder}
          value={text}
          onInput={(e) => {
            const el = e.currentTarget;
            setText(el.value);
            refresh(el.value, el.selectionStart ?? el.value.length);
          }}
          onBlur={() => setTimeout(() => setItems([]), 150)}
          onKeyDown={(e) => {
            if (items.length > 0) {
              if (e.key === "ArrowDown") {
                e.preventDefault();
                setActive((active + 1) % items.length);
                return;
              }
              if (e.key === "ArrowUp") {
                e.preventDefault();
                setActive((active + items.length - 1) % items.length);
                return;
              }
              if (e.key === "Tab" || (e.key === "Enter" && !e.shiftKey)) {
                e.preventDefault();
                take(items[active]);
                return;
              }
              if (e.key === "Escape") {
                setItems([]);
                return;
              }
            }
            if (e.key === "Enter" && !e.shiftKey) {
              e.preventDefault();
              setItems([]);
              props.onSubmit(text);
            }
          }}
        />
        {items.length > 0 && (
          <ul class="suggestions" role="listbox">
            {items.map((s, i) => (
              <li
                key={s.text}
                role="option"
                aria-selected={i === active}
                class={i === active ? "active" : ""}
                onMouseDown={(e) => {
                  e.preventDefault();
                  take(s);
                }}
              >
                <span>{s.text}</span>
                {s.hint && <small>{s.hint}</small>}
              </li>
            ))}
          </ul>
        )}
      </div>
      <button type="submit">Search</button>
    </form>
  );
}
