// The dashboard in a real browser: node check.mjs URL TOKEN SCREENSHOT_PATH
//
// Opens URL (a running `nanny run`'s API) in Chromium, is refused with a
// wrong token, signs in with TOKEN, waits for the workers' rows, checks that
// the page is live (the snapshot number moves on, and a worker killed here
// comes back with a new pid and one more restart), that the token is in
// sessionStorage and in no URL, and that nothing came from another origin
// or broke the Content-Security-Policy; then saves a screenshot. Prints a
// JSON summary on stdout; exits 1 on any failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, token, screenshot] = process.argv.slice(2);
if (!url || !token || !screenshot) {
  console.error('usage: node check.mjs URL TOKEN SCREENSHOT_PATH');
  process.exit(2);
}
// As the Rust tests' PATIENCE: a loaded machine may be slow, never wrong.
const PATIENCE = 30000;
const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

async function run(page, problems) {
  const origin = new URL(url).origin;
  page.on('request', (r) => {
    if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) problems.push(`external request ${r.url()}`);
    if (r.url().includes(token)) problems.push('the token appeared in a request URL');
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Failed loads are reported with their URL here (the refused token's 401
  // is expected); every other console error is a problem.
  page.on('response', (r) => {
    if (r.status() >= 400 && !(r.status() === 401 && r.url().endsWith('/v1/live'))) {
      problems.push(`${r.status()} for ${r.url()}`);
    }
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(`console error: ${m.text()}`);
    }
  });

  const response = await page.goto(url);
  check(response.ok(), `GET / answered ${response.status()}`);
  const csp = response.headers()['content-security-policy'] || '';
  check(csp.includes("connect-src 'self'") && csp.includes("script-src 'self'"), `the CSP header: ${csp}`);

  // A wrong token: refused, and asked for again.
  await page.locator('#token').fill('not-the-token');
  await page.locator('#token').press('Enter');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0, null, { timeout: PATIENCE });
  check(await page.locator('#login').isVisible(), 'the form is back after a refused token');
  check(await page.evaluate(() => sessionStorage.getItem('nanny.token')) === null, 'a refused token was forgotten');

  // The right one.
  await page.locator('#token').fill(token);
  await page.locator('#token').press('Enter');
  const rows = page.locator('#workers tbody tr[data-worker]');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#workers tbody tr[data-worker]')];
    return rows.length >= 2 && rows.every((r) => /^\d+$/.test(r.querySelector('.pid').textContent));
  }, null, { timeout: PATIENCE });

  // Live: the snapshot number moves on.
  const seq = Number(await page.locator('#seq').textContent());
  await page.waitForFunction((s) => Number(document.getElementById('seq').textContent) > s, seq, { timeout: PATIENCE });

  // Live: a worker killed here comes back with a new pid and a restart.
  const victim = rows.first();
  const name = await victim.getAttribute('data-worker');
  const pid = Number(await victim.locator('.pid').textContent());
  const restarts = Number(await victim.locator('.restarts').textContent());
  process.kill(pid, 'SIGKILL');
  await page.waitForFunction(([n, p, r]) => {
    const row = document.querySelector(`#workers tbody tr[data-worker="${n}"]`);
    return row && Number(row.querySelector('.pid').textContent) !== p
      && Number(row.querySelector('.restarts').textContent) > r;
  }, [name, pid, restarts], { timeout: PATIENCE });
  await page.waitForFunction(() => Number(document.getElementById('restarts').textContent) >= 1, null, { timeout: PATIENCE });

  // A few samples in the charts before the picture.
  await page.waitForFunction(() => Number(document.getElementById('seq').textContent) >= 6, null, { timeout: PATIENCE });
  check(await page.locator('#workers svg.spark polyline').count() >= 2, 'RSS charts are drawn');

  check(!page.url().includes(token), `the token is not in the URL (${page.url()})`);
  const stored = await page.evaluate(() => ({
    session: sessionStorage.getItem('nanny.token'),
    local: Object.values(localStorage).join(' '),
    cookie: document.cookie,
  }));
  check(stored.session === token, 'the token is in sessionStorage');
  check(!stored.local.includes(token) && !stored.cookie.includes(token), 'the token is in no other storage');

  await page.screenshot({ path: screenshot, fullPage: true });
  const workers = await rows.evaluateAll((rs) => rs.map((r) => r.getAttribute('data-worker')));
  const pools = await page.locator('#pools tbody tr[data-pool]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-pool')));
  return { workers, pools, killed: name, seq: Number(await page.locator('#seq').textContent()) };
}

const profile = mkdtempSync(join(tmpdir(), 'nanny-chromium-'));
let context;
let failed = false;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1200, height: 720 },
  });
  const page = context.pages()[0] || await context.newPage();
  const problems = [];
  const summary = await run(page, problems);
  check(problems.length === 0, problems.join('; '));
  console.log(JSON.stringify(summary));
} catch (e) {
  failed = true;
  console.error(`dashboard check: ${e.stack || e}`);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
