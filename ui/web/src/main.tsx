import { render } from "preact";
import { useState } from "preact/hooks";
import "./styles.css";
import { onLinkClick, useLocation } from "./url";
import { LogsPage } from "./pages/Logs";
import { TracesPage } from "./pages/Traces";
import { TracePage } from "./pages/Trace";
import { CorrelatePage } from "./pages/Correlate";
import { MetricsPage } from "./pages/Metrics";
import { ServicesPage } from "./pages/Services";
import { AlertsPage } from "./pages/Alerts";

const PAGES = [
  { path: "/ui/logs", title: "Logs" },
  { path: "/ui/traces", title: "Traces" },
  { path: "/ui/correlate", title: "Correlate" },
  { path: "/ui/metrics", title: "Metrics" },
  { path: "/ui/services", title: "Services" },
  { path: "/ui/alerts", title: "Alerts" },
];

function initialTheme(): string {
  const saved = localStorage.getItem("sextant.theme");
  if (saved === "dark" || saved === "light") return saved;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function App() {
  const { path } = useLocation();
  const [theme, setTheme] = useState(initialTheme);
  const [, setZoneTick] = useState(0);
  document.documentElement.dataset.theme = theme;
  let page;
  if (path.startsWith("/ui/traces/")) page = <TracePage id={decodeURIComponent(path.slice("/ui/traces/".length))} />;
  else if (path.startsWith("/ui/traces")) page = <TracesPage />;
  else if (path.startsWith("/ui/correlate")) page = <CorrelatePage />;
  else if (path.startsWith("/ui/metrics")) page = <MetricsPage />;
  else if (path.startsWith("/ui/services")) page = <ServicesPage />;
  else if (path.startsWith("/ui/alerts")) page = <AlertsPage />;
  else page = <LogsPage onZone={() => setZoneTick((n) => n + 1)} />;
  const current = PAGES.find((p) => path.startsWith(p.path))?.title ?? "Logs";
  document.title = `${current} · Sextant`;
  return (
    <div class="app" onClick={onLinkClick}>
      <header class="top">
        <a class="brand" href="/ui/logs">
          ◭ Sextant
        </a>
        <nav aria-label="Pages">
          {PAGES.map((p) => (
            <a key={p.path} href={p.path} aria-current={current === p.title ? "page" : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        <button
          type="button"
          class="theme"
          aria-label={`Switch to the ${theme === "dark" ? "light" : "dark"} theme`}
          onClick={() => {
            const next = theme === "dark" ? "light" : "dark";
            localStorage.setItem("sextant.theme", next);
            setTheme(next);
          }}
        >
          {theme === "dark" ? "☀" : "☾"}
        </button>
      </header>
      <main key={theme}>{page}</main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
