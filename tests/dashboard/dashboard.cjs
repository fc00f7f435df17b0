// Drives crow's web dashboard in headless Chromium (Debian's /usr/bin/chromium, through playwright-core)
// the way a store manager would, asserting on what the page shows. Screenshots go to OUT_DIR.
//
//   node dashboard.cjs BASE_URL ORG TOKEN OUT_DIR FRAMES_DIR
//
// FRAMES_DIR holds JPEG frames (0.jpg, 1.jpg, ...) that the script posts as camera "live-cam" while the
// live view is open. It prints one JSON line of what it saw and exits non-zero on the first failure.
const { chromium } = require("playwright-core");
const fs = require("fs");
const path = require("path");

const [base, org, token, outDir, framesDir] = process.argv.slice(2);
const seen = {};

function check(condition, message) {
  if (!condition) throw new Error(`dashboard check failed: ${message}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(outDir, `${name}.png`), fullPage: true });
}

async function rows(page) {
  return page.$$eval("#interaction-table tbody tr", (trs) =>
    trs.map((tr) => ({ id: tr.dataset.id, source: tr.children[1].textContent, summary: tr.children[2].textContent })));
}

async function apply(page) {
  const before = await page.$eval("#list-status", (e) => e.textContent);
  await page.click("#filters button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#list-status").textContent !== "loading...");
  return before;
}

async function postLiveFrames() {
  const files = fs.readdirSync(framesDir).filter((f) => f.endsWith(".jpg"))
    .sort((a, b) => parseInt(a) - parseInt(b));
  const start = Date.now();
  const frames = files.map((f, i) => ({
    frameIndex: i,
    capturedAt: start + 500 * i,
    format: "jpeg",
    data: fs.readFileSync(path.join(framesDir, f)).toString("base64"),
  }));
  const auth = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  const response = await fetch(`${base}/api/v1/cctv/frames`, {
    method: "POST", headers: auth,
    body: JSON.stringify({ organizationId: org, cameraId: "live-cam", frames }),
  });
  if (!response.ok) throw new Error(`posting live frames: ${response.status} ${await response.text()}`);
  const { acks } = await response.json();
  const session = acks[0].sessionId;
  const closed = await fetch(`${base}/api/v1/organizations/${org}/sessions/${session}/close`, { method: "POST", headers: auth });
  check(closed.ok, `closing the live session: ${closed.status}`);
  return acks;
}

(async () => {
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.setDefaultTimeout(30000);
  try {
    // Login: a wrong token is refused with the server's reason; the right one opens the list.
    await page.goto(`${base}/`);
    check(await page.isVisible("#login"), "the login form shows first");
    await page.fill("#login-org", org);
    await page.fill("#login-token", "not-a-token");
    await page.click("#login-form button");
    await page.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0);
    seen.loginError = await page.textContent("#login-error");
    check(seen.loginError.includes("UNAUTHENTICATED"), `wrong token: ${seen.loginError}`);
    await shot(page, "01-login-refused");
    await page.fill("#login-token", token);
    await page.click("#login-form button");
    await page.waitForSelector("#interaction-table tbody tr");
    check(await page.isVisible("#nav"), "navigation shows after login");
    const first = await rows(page);
    seen.firstPage = first.length;
    check(first.length === 20, `a page holds 20 rows, saw ${first.length}`);
    await shot(page, "02-interactions");

    // Paging: next shows other records, previous comes back.
    check(!(await page.isDisabled("#page-next")), "more than one page");
    await page.click("#page-next");
    await page.waitForFunction((id) => document.querySelector("#interaction-table tbody tr")?.dataset.id !== id, first[0].id);
    const second = await rows(page);
    check(second.every((r) => !first.some((f) => f.id === r.id)), "page 2 holds other records");
    check((await page.textContent("#page-number")) === "page 2", "page number 2");
    await page.click("#page-prev");
    await page.waitForFunction((id) => document.querySelector("#interaction-table tbody tr")?.dataset.id === id, first[0].id);

    // Filters: by source, then words.
    await page.selectOption("#filter-source", "cctv");
    await apply(page);
    const cctv = await rows(page);
    seen.cctvRows = cctv.length;
    check(cctv.length > 0 && cctv.every((r) => r.source === "cctv"), `cctv filter: ${JSON.stringify(cctv.map((r) => r.source))}`);
    await page.selectOption("#filter-source", "web");
    await page.fill("#filter-q", "checkout");
    await apply(page);
    const searched = await rows(page);
    check(searched.length === 1 && searched[0].summary.toLowerCase().includes("checkout"), `search: ${JSON.stringify(searched)}`);
    await page.fill("#filter-q", "");
    await page.fill("#filter-from", "2030-01-01T00:00");
    await apply(page);
    check((await rows(page)).length === 0, "nothing from 2030 on");
    check((await page.textContent("#list-status")).includes("No interactions"), "says so");
    await page.fill("#filter-from", "");
    await page.selectOption("#filter-source", "cctv");
    await apply(page);
    await shot(page, "03-filtered-cctv");

    // A CCTV record with described frames: its summary, products and the evidence keyframes as images.
    // (Which records hold described frames is in their data; the summary says what people did.)
    const listed = await (await fetch(`${base}/api/v1/interactions/organization/${org}?sourceType=cctv&pageSize=100`,
      { headers: { Authorization: `Bearer ${token}` } })).json();
    const described = new Set(listed.interactions.filter((i) => (i.data?.frames ?? []).length > 0).map((i) => i.id));
    const withFrames = cctv.find((r) => described.has(r.id));
    check(withFrames, `a record with described frames: ${JSON.stringify(cctv.map((r) => r.summary))}`);
    await page.click(`#interaction-table tbody tr[data-id="${withFrames.id}"]`);
    await page.waitForSelector("#detail:not([hidden])");
    await page.waitForFunction(() => {
      const imgs = [...document.querySelectorAll("#detail-keyframes img")];
      return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    });
    seen.keyframes = await page.$$eval("#detail-keyframes img", (imgs) => imgs.map((i) => [i.naturalWidth, i.naturalHeight]));
    check(seen.keyframes.every(([w, h]) => w === 768 && h === 576), `vtest keyframes are 768x576: ${JSON.stringify(seen.keyframes)}`);
    check((await page.textContent("#detail-summary")).includes("Camera entrance"), "the record's summary");
    await shot(page, "04-detail");

    // Summary: counts and the chart over time.
    await page.click("nav a[data-view=summary]");
    await page.waitForSelector("#summary-counts .count");
    seen.summary = await page.$$eval("#summary-counts .count", (cs) => Object.fromEntries(cs.map((c) => [c.dataset.source, Number(c.querySelector("b").textContent)])));
    await page.waitForSelector("#summary-chart rect");
    const bars = await page.$$eval("#summary-chart rect", (rs) => rs.map((r) => Number(r.dataset.count)));
    seen.chartTotal = bars.reduce((a, b) => a + b, 0);
    seen.chartHours = new Set(await page.$$eval("#summary-chart rect", (rs) => rs.map((r) => r.dataset.hour))).size;
    check(seen.chartTotal === seen.summary.total, `chart adds up to the total: ${seen.chartTotal} vs ${seen.summary.total}`);
    await shot(page, "05-summary");

    // Live pattern events: frames posted now show up as they are analysed.
    await page.click("nav a[data-view=live]");
    await page.waitForFunction(() => document.querySelector("#live-status").textContent.startsWith("connected"));
    seen.liveAcks = (await postLiveFrames()).map((a) => a.outcome);
    await page.waitForSelector("#live-events li", { timeout: 60000 });
    seen.liveEvent = await page.textContent("#live-events li");
    check(seen.liveEvent.includes("camera live-cam"), `live event: ${seen.liveEvent}`);
    await shot(page, "06-live");

    // Cameras: sessions, and the zones and tripwire drawn over a keyframe.
    await page.click("nav a[data-view=cameras]");
    await page.waitForSelector('.camera[data-camera="entrance"] .sessions li');
    await page.waitForFunction(() => {
      const img = document.querySelector('.camera[data-camera="entrance"] img');
      return img && img.complete && img.naturalWidth > 0;
    });
    seen.zones = await page.$$eval('.camera[data-camera="entrance"] polygon', (ps) => ps.map((p) => p.dataset.zone));
    seen.lines = await page.$$eval('.camera[data-camera="entrance"] line', (ls) => ls.map((l) => l.dataset.line));
    check(seen.zones.includes("display-1") && seen.lines.includes("door"), `zones ${seen.zones} lines ${seen.lines}`);
    seen.sessions = await page.$$eval('.camera[data-camera="entrance"] .sessions li', (ls) => ls.map((l) => l.textContent));
    check(seen.sessions.some((s) => s.includes("(closed)")), `sessions: ${seen.sessions}`);
    await shot(page, "07-cameras");

    await page.click("nav a[data-view=health]");
    await page.waitForFunction(() => document.querySelector("#health-status").textContent.includes("serving"));
    await shot(page, "08-health");
    check(problems.length === 0, problems.join("; "));
    console.log(JSON.stringify(seen));
  } catch (e) {
    await shot(page, "failure").catch(() => {});
    console.error(e.message);
    console.error(JSON.stringify(seen));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();
