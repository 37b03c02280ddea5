// Browser tests of Sextant's UI: Debian's Chromium driven by playwright-core
// against a real server that tests/tests/ui.rs started and fed through the
// real ingest protocols. Inputs come in the environment:
//   SEXTANT_URL     the server's HTTP base URL
//   SCREENSHOTS     where to save a screenshot of each page
//   REQUEST_ID      a request uuid carried by log lines and spans
//   TRACE_ID        the trace those spans belong to
//   LOG_LINES       how many log lines carry REQUEST_ID
//   SERVICES        the services (comma separated) that logged REQUEST_ID
//   ALERT           an alert that is firing
//   BROWSER_ENV     the directory whose node_modules holds playwright-core
// Exits 1 naming the step and what was wrong; prints each step as it passes.
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";

// playwright-core lives outside the clone (scripts/setup-browser-env).
const { chromium } = createRequire(`${process.env.BROWSER_ENV}/`)("playwright-core");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const base = env("SEXTANT_URL");
const shots = env("SCREENSHOTS");
const requestId = env("REQUEST_ID");
const traceId = env("TRACE_ID");
const logLines = Number(env("LOG_LINES"));
const services = env("SERVICES").split(",");
const alert = env("ALERT");
mkdirSync(shots, { recursive: true });

function check(condition, what) {
  if (!condition) throw new Error(what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, timezoneId: "UTC" });
const page = await context.newPage();
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(e.message));
page.on("console", (m) => {
  // An API's 4xx is the page's business (it shows the error); anything else is a bug.
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(m.text());
});
page.setDefaultTimeout(15000);

let step = "start";
async function run(name, body) {
  step = name;
  await body();
  check(pageErrors.length === 0, `the page reported errors: ${pageErrors.join(" | ")}`);
  console.log(`ok - ${name}`);
}
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: false });

try {
  await run("a browser asking for / gets the UI", async () => {
    const response = await page.goto(`${base}/`);
    check(response.headers()["content-type"].startsWith("text/html"), `GET / answered ${response.headers()["content-type"]}`);
    await page.getByRole("navigation", { name: "Pages" }).waitFor();
    check((await page.title()).includes("Sextant"), `title is ${await page.title()}`);
  });

  await run("search a request uuid and see its log lines", async () => {
    await page.goto(`${base}/ui/logs`);
    const box = page.getByRole("textbox", { name: "Log query" });
    await box.fill(requestId);
    await box.press("Enter");
    const rows = page.getByRole("list", { name: "Log lines" }).locator(".log");
    await rows.first().waitFor();
    // The list may render in more than one pass: wait for it to settle.
    for (let i = 0; i < 50 && (await rows.count()) !== logLines; i++) await page.waitForTimeout(100);
    const count = await rows.count();
    check(count === logLines, `${count} rows, want ${logLines}`);
    const text = await page.locator(".count").innerText();
    check(text.startsWith(`${logLines} lines`), `the count says "${text}"`);
    const shown = await page.locator(".loglist .log .svc").allInnerTexts();
    for (const s of services) check(shown.includes(s), `no line of ${s} among ${shown}`);
    check(new URL(page.url()).searchParams.get("q") === requestId, `the URL keeps the query: ${page.url()}`);
    await page.locator(".chart canvas").first().waitFor();
    await shot("logs");
  });

  await run("expand a line, filter by a field value", async () => {
    const first = page.locator(".loglist .log").first();
    await first.locator("button.line").click();
    const fields = first.locator("table.fields");
    await fields.waitFor();
    const uuidRow = fields.locator("tr", { has: page.locator("th", { hasText: /^uuid$/ }) });
    check((await uuidRow.innerText()).includes(requestId), "the expanded line shows its uuid");
    await first.locator("summary", { hasText: "JSON" }).click();
    check((await first.locator("pre.raw").innerText()).includes(`"message"`), "the raw JSON is shown");
    await shot("logs-expanded");
    const service = await first.locator(".svc").innerText();
    await fields.getByRole("button", { name: "Filter for service" }).click();
    await page.waitForURL((u) => u.searchParams.get("q")?.includes(`service:"${service}"`));
    await page.waitForFunction((s) => {
      const svcs = [...document.querySelectorAll(".loglist .log .svc")].map((e) => e.textContent);
      return svcs.length > 0 && svcs.every((x) => x === s);
    }, service);
    await page.goBack();
    await page.waitForFunction((n) => document.querySelectorAll(".loglist .log").length === n, logLines);
  });

  await run("drag across the histogram to zoom, switch the zone, follow the live tail", async () => {
    await page.goto(`${base}/ui/logs?q=${encodeURIComponent(requestId)}&from=now-15m&to=now`);
    const canvas = page.locator(".chart .u-over").first();
    await canvas.waitFor();
    const box = await canvas.boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
    await page.mouse.down();
    // Past the right edge: the selection stops at the plot's end, now.
    await page.mouse.move(box.x + box.width + 30, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.waitForURL((u) => /^\d{4}-/.test(u.searchParams.get("from") ?? ""));
    const from = Date.parse(new URL(page.url()).searchParams.get("from"));
    const to = Date.parse(new URL(page.url()).searchParams.get("to"));
    check(to - from < 9 * 60e3 && to > from, `zoomed to ${from}..${to}`);
    await page.waitForFunction((n) => document.querySelectorAll(".loglist .log").length === n, logLines);

    await page.getByRole("button", { name: /▾$/ }).click();
    const zone = page.getByLabel(/Show times in UTC/);
    if (!(await zone.isChecked())) await zone.check();
    await page.keyboard.press("Escape");
    check((await page.locator(".count").innerText()).includes("UTC"), "times are said to be in UTC");

    await page.goto(`${base}/ui/logs?q=${encodeURIComponent("service:tailtest")}&live=1`);
    await page.getByText("Live tail").first().waitFor();
    await page.waitForTimeout(500);
    const sent = await fetch(`${base}/api/v1/logs`, {
      method: "POST",
      body: JSON.stringify({ message: "a line for the tail", service: "tailtest", level: "INFO" }) + "\n",
    });
    check(sent.ok, `posting a log line answered ${sent.status}`);
    await page.locator(".tail .log", { hasText: "a line for the tail" }).waitFor();
  });

  await run("a long result renders a screenful and scrolls through all of it", async () => {
    const now = Date.now() / 1000;
    const lines = [];
    for (let i = 0; i < 1200; i++) lines.push(JSON.stringify({ timestamp: now - 1200 + i, message: `bulk line ${i}`, service: "bulk", level: "INFO" }));
    const sent = await fetch(`${base}/api/v1/logs`, { method: "POST", body: lines.join("\n") + "\n" });
    check(sent.ok, `posting 1200 lines answered ${sent.status}`);
    await new Promise((r) => setTimeout(r, 2500));
    await page.goto(`${base}/ui/logs?q=${encodeURIComponent("service:bulk")}`);
    const list = page.getByRole("list", { name: "Log lines" });
    await list.locator(".log").first().waitFor();
    check((await list.getAttribute("aria-rowcount")) === "500", `a page of ${await list.getAttribute("aria-rowcount")} rows, want 500`);
    const inDom = await list.locator(".log").count();
    check(inDom < 150, `${inDom} rows in the DOM: the list should render about a screenful`);
    check((await list.locator(".log").first().innerText()).includes("bulk line 1199"), "newest first");
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await list.locator(".log", { hasText: "bulk line 700" }).waitFor();
    await page.getByRole("button", { name: "Older lines" }).click();
    await page.waitForFunction(() => document.querySelector('[aria-label="Log lines"]').getAttribute("aria-rowcount") === "1000");
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await list.locator(".log", { hasText: "bulk line 200" }).waitFor();
  });

  await run("open the trace from a log line", async () => {
    await page.goto(`${base}/ui/logs?q=${encodeURIComponent(requestId)}`);
    const withTrace = page.locator(".loglist .log", { hasText: "settings store unavailable" }).first();
    await withTrace.locator("button.line").click();
    await withTrace.getByRole("link", { name: traceId }).click();
    await page.waitForURL(`**/ui/traces/${traceId}`);
    const spans = page.getByRole("treeitem");
    await spans.first().waitFor();
    check((await spans.count()) === 3, `the waterfall shows ${await spans.count()} spans, want 3`);
    check((await page.locator(".span.failed").count()) === 1, "the failed settings call is marked as an error");
    await page.locator(".span.failed button.label").click();
    await page.locator(".spandetail").getByText("cache miss").waitFor();
    const logs = page.getByRole("list", { name: "Trace logs" }).locator("li");
    await logs.first().waitFor();
    await page.getByRole("button", { name: "Collapse" }).first().click();
    check((await spans.count()) === 1, "collapsing the root hides its children");
    await page.getByRole("button", { name: "Expand" }).first().click();
    check((await spans.count()) === 3, "expanding it shows them again");
    await shot("trace");
  });

  await run("find the trace by service and see the dependency graph", async () => {
    await page.goto(`${base}/ui/traces?service=${encodeURIComponent(services.find((s) => s.startsWith("settings")))}`);
    const list = page.getByRole("list", { name: "Traces" });
    await list.locator(`a[href="/ui/traces/${traceId}"]`).waitFor();
    await page.locator(".chart canvas").first().waitFor();
    await shot("traces");
    await page.getByRole("tab", { name: "Service dependencies" }).click();
    const graph = page.getByRole("img", { name: "Service dependency graph" });
    await graph.waitFor();
    const names = await graph.locator(".node text").allTextContents();
    check(names.some((n) => n.startsWith("profile")) && names.some((n) => n.startsWith("settings")), `graph nodes ${names}`);
    await shot("dependencies");
  });

  await run("open the correlation view", async () => {
    await page.goto(`${base}/ui/correlate`);
    await page.getByRole("textbox", { name: "Id to correlate" }).fill(requestId);
    await page.getByRole("button", { name: "Correlate" }).click();
    const lanes = page.getByRole("list", { name: "Timeline by service" }).getByRole("listitem");
    await lanes.first().waitFor();
    const laneNames = await lanes.locator(".lanename").allInnerTexts();
    for (const s of services) check(laneNames.includes(s), `no lane for ${s} in ${laneNames}`);
    const rows = page.getByRole("table", { name: "Logs and spans in time order" }).locator("tbody tr");
    const kinds = await rows.locator("td:nth-child(3)").allInnerTexts();
    check(kinds.filter((k) => k === "span").length === 3, `the timeline has ${kinds.filter((k) => k === "span").length} spans, want 3`);
    check(kinds.length === 3 + logLines, `the timeline has ${kinds.length} entries, want ${3 + logLines}`);
    const times = await rows.locator("td.ts").allInnerTexts();
    check([...times].sort().join() === times.join(), `entries are in time order: ${times}`);
    await shot("correlate");
  });

  await run("run a PromQL query with completion and see a graph", async () => {
    await page.goto(`${base}/ui/metrics`);
    const editor = page.getByRole("textbox", { name: "PromQL expression" });
    await editor.click();
    await editor.pressSequentially("traces_spanmetrics_ca");
    const option = page.getByRole("option", { name: /traces_spanmetrics_calls_total/ });
    await option.waitFor();
    await editor.press("Enter");
    check((await editor.inputValue()) === "traces_spanmetrics_calls_total", `completion gave ${await editor.inputValue()}`);
    await editor.press("End");
    await editor.pressSequentially("{servic");
    await page.getByRole("option", { name: "service" }).waitFor();
    await editor.press("Tab");
    await editor.pressSequentially("=");
    await editor.pressSequentially('"');
    await page.getByRole("option", { name: '"settings"' }).waitFor();
    await editor.fill("sum by (service) (traces_spanmetrics_calls_total)");
    await editor.press("Enter");
    await page.locator(".chart canvas").first().waitFor();
    const legend = await page.locator(".u-legend .u-series").allInnerTexts();
    check(legend.length >= 3, `the legend lists ${legend.length - 1} series`);
    await page.getByLabel("Legend").fill("{{service}} calls");
    await page.getByLabel("Legend").press("Enter");
    await page.waitForFunction(() => [...document.querySelectorAll(".u-legend .u-series")].some((e) => e.textContent.includes(" calls")));
    await shot("metrics");
    await page.getByRole("tab", { name: "Table" }).click();
    const cells = page.getByRole("table", { name: "Query result" }).locator("tbody tr");
    await cells.first().waitFor();
    // The graph's rows may show until the instant query answers: wait for it.
    await page.waitForFunction(() => [...document.querySelectorAll("table.result tbody tr td:last-child")].some((td) => !td.textContent.includes("@")));
    check((await cells.count()) >= 2, "the table view lists the series");
  });

  await run("open a trace from an exemplar on a latency graph", async () => {
    const expr = 'sum by (le) (rate(traces_spanmetrics_latency_bucket{service="settings"}[5m]))';
    await page.goto(`${base}/ui/metrics?expr=${encodeURIComponent(expr)}`);
    await page.locator(".chart canvas").first().waitFor();
    const exemplars = page.getByRole("list", { name: "Exemplars" });
    await page.locator("details.exemplars summary").click();
    const link = exemplars.locator(`a[href="/ui/traces/${traceId}"]`);
    await link.waitFor();
    await shot("metrics-exemplars");
    await link.click();
    await page.waitForURL(`**/ui/traces/${traceId}`);
    await page.getByRole("treeitem").first().waitFor();
  });

  await run("see the golden signals per service", async () => {
    await page.goto(`${base}/ui/services`);
    const table = page.getByRole("table", { name: "Golden signals per service" });
    await table.waitFor();
    const rows = await table.locator("tbody th").allInnerTexts();
    check(rows.some((r) => r.startsWith("settings")), `services listed: ${rows}`);
    await page.getByRole("table", { name: "Timers" }).waitFor();
    await shot("services");
  });

  await run("see the firing alert and its history", async () => {
    await page.goto(`${base}/ui/alerts`);
    const active = page.getByRole("table", { name: "Active alerts" });
    await active.waitFor();
    const row = active.locator("tr", { hasText: alert });
    await row.locator(".s-firing").waitFor();
    await row.getByRole("link", { name: alert }).click();
    const history = page.getByRole("table", { name: `State history of ${alert}` });
    await history.waitFor();
    const changes = await history.locator("tbody tr").allInnerTexts();
    check(changes.some((c) => c.includes("pending") && c.includes("firing")), `history rows: ${changes}`);
    await page.locator(".rulehistory .chart canvas").waitFor();
    await shot("alerts");
    await row.getByRole("button", { name: "Silence" }).click();
    const form = page.getByRole("form", { name: "New silence" });
    check((await form.getByLabel("Matchers").inputValue()).includes(`alertname="${alert}"`), "the silence is prefilled from the alert's labels");
    await form.getByLabel("Comment").fill("browser test");
    await form.getByRole("button", { name: "Create silence" }).click();
    const silences = page.getByRole("table", { name: "Silences" });
    await silences.locator("tr", { hasText: "browser test" }).locator(".s-active").waitFor();
    await silences.locator("tr", { hasText: "browser test" }).getByRole("button", { name: "Expire" }).click();
    await silences.locator("tr", { hasText: "browser test" }).locator(".s-expired").waitFor();
  });

  await run("write a rule group through the ruler API and delete it", async () => {
    await page.goto(`${base}/ui/alerts`);
    await page.getByRole("button", { name: "New or changed rule group" }).click();
    const form = page.getByRole("form", { name: "Rule group" });
    await form.getByLabel("Namespace").fill("browser");
    await form.getByLabel(/Group \(YAML/).fill("name: broken\nrules:\n  - alert: Broken\n    expr: sum(rate(x[5m])\n");
    await form.getByRole("button", { name: "Save group" }).click();
    const error = form.getByRole("alert");
    await error.waitFor();
    check((await error.innerText()).includes("Broken"), `the error names the rule: ${await error.innerText()}`);
    await form.getByLabel(/Group \(YAML/).fill("name: from-the-ui\nrules:\n  - alert: QueueDeep\n    expr: rabbitmq_queue_messages > 1000\n");
    await form.getByRole("button", { name: "Save group" }).click();
    const rules = page.getByRole("table", { name: "Rules" });
    const row = rules.locator("tr", { hasText: "QueueDeep" });
    await row.waitFor();
    await row.getByRole("button", { name: "Delete group" }).click();
    await row.waitFor({ state: "detached" });
  });

  await run("the dark theme and the keyboard", async () => {
    await page.goto(`${base}/ui/logs?q=${encodeURIComponent(requestId)}`);
    await page.getByRole("button", { name: /dark theme/ }).click();
    check((await page.evaluate(() => document.documentElement.dataset.theme)) === "dark", "the theme switched");
    await page.locator(".loglist .log").first().waitFor();
    await page.locator(".loglist .log button.line").first().focus();
    await page.keyboard.press("Enter");
    await page.locator("table.fields").first().waitFor();
    await shot("logs-dark");
  });

  await run("an unreadable query says what is wrong", async () => {
    await page.goto(`${base}/ui/metrics?expr=${encodeURIComponent("sum(rate(x[5m])")}`);
    const error = page.getByRole("alert");
    await error.waitFor();
    check((await error.innerText()).length > 10, "the PromQL error is shown in words");
    await page.goto(`${base}/ui/logs?q=${encodeURIComponent("level:(")}`);
    await page.getByRole("alert").waitFor();
    await page.goto(`${base}/ui/correlate?id=no-such-id-anywhere`);
    await page.getByText("Nothing carries").waitFor();
  });
} catch (e) {
  console.error(`FAILED at "${step}": ${e.message}`);
  await shot(`failed-${step.replace(/[^a-z0-9]+/gi, "-")}`).catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
