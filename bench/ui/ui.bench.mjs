// The UI's performance goals, measured in Debian's Chromium (run by
// bench/src/bin/ui.rs against a server it filled):
// - first load of every page with an empty cache (navigation to `load`),
//   and the bytes of JavaScript it fetched, gzip'd as served;
// - a log search of 500 rows: from the answer to the rows laid out
//   (the page's `logs:render` User Timing measure);
// - a graph of 10,000 points: from making the chart to its first drawing
//   (the `chart:draw` measure).
// Prints one JSON object on stdout.
import { createRequire } from "node:module";

const { chromium } = createRequire(`${process.env.BROWSER_ENV}/`)("playwright-core");
const base = process.env.SEXTANT_URL;
const graphExpr = process.env.GRAPH_EXPR;
const graphFrom = process.env.GRAPH_FROM;
const graphTo = process.env.GRAPH_TO;
const runs = Number(process.env.RUNS ?? "10");

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
});
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
const out = { firstLoad: {}, logsRender: [], chartDraw: [] };

for (const path of ["/", "/ui/logs", "/ui/traces", "/ui/correlate", "/ui/metrics", "/ui/services", "/ui/alerts"]) {
  const loads = [];
  let js = 0;
  for (let i = 0; i < 5; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(base + path, { waitUntil: "load" });
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const scripts = performance.getEntriesByType("resource").filter((r) => r.name.endsWith(".js"));
      return { load: nav.loadEventEnd - nav.startTime, js: scripts.reduce((n, r) => n + r.transferSize, 0) };
    });
    loads.push(timing.load);
    js = timing.js;
    await context.close();
  }
  out.firstLoad[path] = { medianMs: pct(loads, 0.5), maxMs: Math.max(...loads), jsBytes: js };
}

const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
await page.goto(`${base}/ui/logs?q=${encodeURIComponent("service:bench")}&from=now-1h&to=now`);
// The list renders a screenful of the 500 rows: that is what it is for.
await page.waitForFunction(() => performance.getEntriesByName("logs:render").length > 0);
for (let i = 0; i < runs; i++) {
  await page.evaluate(() => performance.clearMeasures("logs:render"));
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForFunction(() => performance.getEntriesByName("logs:render").length > 0);
  out.logsRender.push(await page.evaluate(() => performance.getEntriesByName("logs:render")[0].duration));
}
if (process.env.SCREENSHOTS) await page.screenshot({ path: `${process.env.SCREENSHOTS}/bench-logs.png` });
out.logRows = await page.evaluate(() => Number(document.querySelector('[aria-label="Log lines"]').getAttribute("aria-rowcount")));
out.logRowsInDom = await page.locator(".loglist .log").count();

const url = `${base}/ui/metrics?expr=${encodeURIComponent(graphExpr)}&from=${graphFrom}&to=${graphTo}&step=1`;
for (let i = 0; i < runs; i++) {
  await page.goto(url);
  await page.waitForFunction(() => performance.getEntriesByName("chart:draw").length > 0);
  const m = await page.evaluate(() => {
    const e = performance.getEntriesByName("chart:draw")[0];
    return { ms: e.duration, points: e.detail.points };
  });
  out.chartDraw.push(m.ms);
  out.chartPoints = m.points;
}
if (process.env.SCREENSHOTS) await page.screenshot({ path: `${process.env.SCREENSHOTS}/bench-metrics.png` });
out.summary = {
  logsRenderP50: pct(out.logsRender, 0.5),
  logsRenderMax: Math.max(...out.logsRender),
  chartDrawP50: pct(out.chartDraw, 0.5),
  chartDrawMax: Math.max(...out.chartDraw),
};
await browser.close();
console.log(JSON.stringify(out));
