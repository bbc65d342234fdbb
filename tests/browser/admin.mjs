// Drives wxgate's status page (/admin) in a real Chromium, as an operator would.
//
//   node tests/browser/admin.mjs --url http://127.0.0.1:8080 --key KEY \
//     --app wx1 --app wx2 --screenshot target/admin.png \
//     [--platform COMPONENT_APPID:AUTHORIZER_APPID]
//
// Each option also reads from the environment: WXGATE_URL, WXGATE_ADMIN_KEY,
// WXGATE_APPIDS (comma-separated), WXGATE_SCREENSHOT. Run by
// crates/wxgate/tests/cli/admin.rs; scripts/test installs Chromium and this package.
// Exits 0 when every check passes, 1 with the failed check otherwise.

import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Background networking must stay off on this machine (only package registries are reachable).
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

class CheckFailed extends Error {}
function check(ok, message) {
  if (!ok) throw new CheckFailed(message);
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function options() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      key: { type: 'string' },
      app: { type: 'string', multiple: true },
      screenshot: { type: 'string' },
      platform: { type: 'string' },
    },
  });
  const url = (values.url || process.env.WXGATE_URL || '').replace(/\/+$/, '');
  const key = values.key || process.env.WXGATE_ADMIN_KEY || '';
  const apps = values.app || (process.env.WXGATE_APPIDS || '').split(',').filter(Boolean);
  const screenshot = values.screenshot || process.env.WXGATE_SCREENSHOT || '';
  // An Open Platform platform and one of its authorizers to find on the page.
  const [component, authorizer] = (values.platform || '').split(':');
  check(url && key && apps.length > 0 && screenshot,
    'usage: admin.mjs --url URL --key ADMIN_KEY --app APPID [--app APPID]… --screenshot PATH');
  return { url, key, apps, screenshot, component, authorizer };
}

// Without a key: 401, the login form, and the hardening headers.
async function checkClosedDoor(url) {
  const response = await fetch(`${url}/admin`, { redirect: 'manual' });
  const body = await response.text();
  check(response.status === 401, `GET /admin without a key answered ${response.status}, expected 401`);
  check(/<input[^>]*name="key"[^>]*type="password"/.test(body), 'the 401 page has no password field named "key"');
  const headers = response.headers;
  check(headers.get('cache-control') === 'no-store', `Cache-Control is ${headers.get('cache-control')}`);
  check(headers.get('x-frame-options') === 'DENY', `X-Frame-Options is ${headers.get('x-frame-options')}`);
  const csp = headers.get('content-security-policy') || '';
  check(csp.includes("default-src 'none'") && !csp.includes('unsafe-inline'), `weak Content-Security-Policy: ${csp}`);
  const json = await fetch(`${url}/admin/status.json`);
  check(json.status === 401, `GET /admin/status.json without a key answered ${json.status}, expected 401`);
  const live = await fetch(`${url}/admin/live.html`);
  check(live.status === 401, `GET /admin/live.html without a key answered ${live.status}, expected 401`);
}

async function countdown(page, appid) {
  const selector = `article.card[data-appid="${appid}"] [data-kind="access_token"] [data-countdown]`;
  const el = page.locator(selector);
  check(await el.count() === 1, `${appid}: no access_token countdown (${selector})`);
  const remaining = Number(await el.getAttribute('data-remaining'));
  const text = (await el.textContent()).trim();
  check(Number.isInteger(remaining) && remaining > 0, `${appid}: data-remaining is ${remaining}`);
  check(/^(\d+h )?(\d+m )?\d+s$/.test(text), `${appid}: countdown reads "${text}"`);
  return remaining;
}

async function checkCards(page, apps) {
  for (const appid of apps) {
    const card = page.locator(`article.card[data-appid="${appid}"]`);
    check(await card.count() === 1, `no card for ${appid} (found ${await page.locator('[data-appid]').count()} cards)`);
  }
}

// A page on another port of the same host (the same site: the SameSite=Strict
// cookie goes along) auto-posts the revoke form with confirm=APPID, as in
// issue #24: refused (403), nothing revoked. admin.rs checks the token count.
async function checkForgedPost(context, url, appid) {
  const target = `${url}/admin/apps/${encodeURIComponent(appid)}/revoke`;
  const html = `<!doctype html><form id="f" method="post" action="${target}">`
    + `<input type="hidden" name="confirm" value="${appid}"></form>`
    + '<script>document.getElementById("f").submit()</script>';
  const server = createServer((_, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const attacker = await context.newPage();
    const answered = attacker.waitForResponse((r) => r.url() === target && r.request().method() === 'POST');
    await attacker.goto(`http://127.0.0.1:${server.address().port}/`);
    const answer = await answered;
    const body = await answer.text();
    check(answer.status() === 403, `a revoke posted by a page on another port answered ${answer.status()}, expected 403`);
    check(!body.includes('Revoked.'), 'a revoke posted by a page on another port revoked');
    await attacker.close();
  } finally {
    server.close();
  }
}

// The Open Platform panel: the platform's ticket age, its component token
// counting down, and its authorizer (which has an app card of its own).
async function checkPlatform(page, component, authorizer) {
  const panel = page.locator(`article.platform[data-component="${component}"]`);
  check(await panel.count() === 1, `no Open Platform panel for ${component}`);
  const ticket = (await panel.locator('.ticket time').textContent()).trim();
  check(/ago$|^now$/.test(ticket), `${component}: the last verify ticket reads "${ticket}"`);
  const token = panel.locator('[data-kind="component_access_token"] [data-countdown]');
  check(await token.count() === 1, `${component}: no component token countdown`);
  const row = (await panel.locator(`tr[data-authorizer="${authorizer}"]`).textContent()) || '';
  check(row.includes('authorized') && row.includes('official'), `${component}: the authorizer row reads "${row}"`);
  check(await page.locator(`article.card[data-appid="${authorizer}"]`).count() === 1, `no card for the authorizer ${authorizer}`);
}

async function run({ url, key, apps, screenshot, component, authorizer }) {
  await checkClosedDoor(url);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const problems = [];
    page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });

    // The login form, a wrong key, then the right one.
    const first = await page.goto(`${url}/admin`);
    check(first.status() === 401, `/admin in the browser answered ${first.status()}, expected 401`);
    const field = page.locator('form[action="/admin/login"] input[type="password"][name="key"]');
    check(await field.isVisible(), 'the login form is not visible');
    await field.fill(`${key}-wrong`);
    const wrong = await Promise.all([page.waitForNavigation(), field.press('Enter')]).then(([r]) => r);
    check(wrong.status() === 401, `a wrong key answered ${wrong.status()}, expected 401`);
    check(await page.locator('.error').isVisible(), 'a wrong key shows no error message');
    problems.length = 0; // the 401s above are logged by the console as failed loads
    await page.locator('input[name="key"]').fill(key);
    const [opened] = await Promise.all([page.waitForNavigation(), page.locator('button[type="submit"]').click()]);
    check(opened.status() === 200 && new URL(opened.url()).pathname === '/admin',
      `logging in led to ${opened.url()} (${opened.status()}), expected /admin (200)`);

    // The server-rendered page, kept live by the script.
    await checkCards(page, apps);
    const before = await Promise.all(apps.map((appid) => countdown(page, appid)));
    await sleep(2200);
    const after = await Promise.all(apps.map((appid) => countdown(page, appid)));
    apps.forEach((appid, i) => {
      const fell = before[i] - after[i];
      check(fell >= 1 && fell <= 4, `${appid}: countdown went from ${before[i]} to ${after[i]} in 2.2 s`);
    });

    if (component) await checkPlatform(page, component, authorizer);

    // The live part fetched again from /admin/live.html (every 5 s) and swapped in keeps the same marks.
    await page.waitForFunction(() => Number(document.body.dataset.updates || 0) >= 1, null, { timeout: 12000 })
      .catch(() => check(false, 'the page never refreshed from /admin/live.html'));
    await checkCards(page, apps);
    await Promise.all(apps.map((appid) => countdown(page, appid)));
    if (component) await checkPlatform(page, component, authorizer);
    const live = (await page.locator('#live').textContent()).trim();
    check(live === 'live', `the live indicator reads "${live}"`);
    const status = await page.request.get(`${url}/admin/status.json`);
    check(status.status() === 200, `status.json with the session cookie answered ${status.status()}`);
    check(problems.length === 0, `the page reported problems:\n  ${problems.join('\n  ')}`);

    // The 24 h timelines: one image per app, drawn from the audit log.
    for (const appid of apps) {
      // A WeCom app's owner id (corpid/name) is one path segment: corpid%2Fname.
      const path = `/admin/apps/${encodeURIComponent(appid)}/timeline.svg`;
      const img = page.locator(`img[data-timeline="${path}"]`);
      check(await img.count() === 1, `${appid}: no timeline image`);
      await img.scrollIntoViewIfNeeded();
      const width = await img.evaluate((el) => (el.complete ? el.naturalWidth : 0));
      check(width === 960, `${appid}: the timeline image did not load (naturalWidth ${width})`);
      const svg = await page.request.get(`${url}${path}`);
      check(svg.status() === 200 && (svg.headers()['content-type'] || '').startsWith('image/svg+xml'),
        `${appid}: timeline.svg answered ${svg.status()} ${svg.headers()['content-type']}`);
      const drawn = await svg.text();
      check(/class="life"/.test(drawn) && /class="mark fetched"/.test(drawn),
        `${appid}: the timeline shows no lifetime or fetch`);
    }
    check(problems.length === 0, `the page reported problems:\n  ${problems.join('\n  ')}`);
    await page.screenshot({ path: screenshot, fullPage: true });

    // Revoke the last app's token with the button: a confirmation first, then the answer.
    const last = apps[apps.length - 1];
    await checkForgedPost(context, url, last);
    const revoke = page.locator(`form[action="/admin/apps/${last}/revoke"] button`);
    const [asked] = await Promise.all([page.waitForNavigation(), revoke.click()]);
    check(asked.status() === 200, `the revoke button answered ${asked.status()}, expected a confirmation (200)`);
    check(!(await page.locator('.ok').count()), 'the first click revoked without a confirmation');
    const confirm = page.locator(`form[action="/admin/apps/${last}/revoke"] input[name="confirm"][value="${last}"]`);
    check(await confirm.count() === 1, 'the confirmation page has no confirm field');
    const [done] = await Promise.all([page.waitForNavigation(),
      page.locator(`form[action="/admin/apps/${last}/revoke"] button`).click()]);
    check(done.status() === 200, `confirming the revocation answered ${done.status()}`);
    const said = (await page.locator('.ok').textContent()).trim();
    check(said === 'Revoked.', `the revocation page says "${said}"`);
    console.log(`admin.mjs: ok: ${apps.length} app cards, countdowns running, timelines drawn, a forged revoke from another port refused, ${last} revoked by the button; screenshot ${screenshot}`);
  } finally {
    await browser.close();
  }
}

try {
  await run(options());
} catch (error) {
  const message = error instanceof CheckFailed ? error.message : error.stack || String(error);
  console.error(`admin.mjs: FAIL: ${message}`);
  process.exit(1);
}
