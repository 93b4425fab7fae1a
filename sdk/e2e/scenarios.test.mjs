// Browser scenarios of issue 15, each in its own page against one real server
// (lucent-ingest + lucent-consumer on SQLite, another origin than the page, so
// CORS applies), in headless Chromium driven by playwright-core:
//   - masking on: a typed password, a typed value and a masked text never leave the page;
//   - 429: the SDK reads Retry-After cross-origin and waits that long;
//   - a 3 s visit with a large DOM is replayable (its full snapshot is stored);
//   - a tab switch alone: a keepalive fetch whose answer is read, no beacon, recording goes on;
//   - 401 and an unreachable server: no page error, the SDK stops or keeps its buffer;
//   - 413: a full snapshot over the server's 1 MiB is dropped, asked for again once, the rest arrives;
//   - several tabs of one site on one key: one request per interval each, no 429.
//   - 503: a second ingest whose queue (SQLite) is locked answers 503; the batch is kept and delivered after.
// Run by `npm run e2e` next to browser.test.mjs (same requirements).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { Processes, freePort, get, lucentBinary, runCli, serveStatic, sleep, waitFor } from './harness.mjs';

const SDK_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN_DIR = process.env.LUCENT_BIN_DIR ? path.resolve(process.env.LUCENT_BIN_DIR) : path.resolve(SDK_DIR, '../target/debug');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ORG = 'e2e-scenarios';
const STORE = 'sqlite://data/lucent.db';
const FULL_SNAPSHOT = 2;

let tmp;
let procs;
let staticServer;
let browser;
let endpoint;
let pageOrigin;
let consumerBin;
let ingestBin;
let ok = false;
let common;

before(async () => {
  ingestBin = lucentBinary(BIN_DIR, 'lucent-ingest');
  consumerBin = lucentBinary(BIN_DIR, 'lucent-consumer');
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install -y chromium, or set CHROMIUM_PATH)`);
  assert.ok(fs.existsSync(path.join(SDK_DIR, 'dist/lucent.bundle.min.js')), 'run `npm run build` first (npm run e2e does)');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lucent-e2e-scenarios-'));
  procs = new Processes(tmp);
  // Create a key first: the command also creates the store's schema.
  await newKey();
  const [ingestPort, ingestAdmin, consumerAdmin, staticPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  common = { LUCENT_QUEUE: 'sqlite://data/queue.db', LUCENT_STORE: STORE, LUCENT_KEY_REFRESH_MS: '200' };
  procs.start('ingest', ingestBin, ['serve'], { ...common, LUCENT_LISTEN: `127.0.0.1:${ingestPort}`, LUCENT_ADMIN_LISTEN: `127.0.0.1:${ingestAdmin}` });
  procs.start('consumer', consumerBin, ['run'], { ...common, LUCENT_ADMIN_LISTEN: `127.0.0.1:${consumerAdmin}` });
  for (const admin of [ingestAdmin, consumerAdmin]) {
    await waitFor(async () => (await get(`http://127.0.0.1:${admin}/readyz`))?.status === 200, {
      timeoutMs: 30_000,
      message: () => `not ready in 30 s\n${procs.logs()}`,
    });
  }
  endpoint = `http://127.0.0.1:${ingestPort}`;
  staticServer = await serveStatic(SDK_DIR, staticPort);
  pageOrigin = `http://127.0.0.1:${staticPort}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (staticServer) await new Promise((r) => staticServer.close(r));
  await procs?.stopAll();
  if (tmp && ok && !process.env.LUCENT_E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  else if (tmp) console.error(`temp dir kept: ${tmp}\n${procs?.logs() ?? ''}`);
});

let allPassed = true;
const scenario = (name, fn) =>
  test(name, { timeout: 90_000 }, async () => {
    try {
      await fn();
    } catch (e) {
      allPassed = false;
      throw e;
    }
  });
after(() => {
  ok = allPassed;
});

async function newKey(rate) {
  const args = ['keys', 'create', '--org', ORG, '--store', STORE];
  if (rate) args.push('--rate-limit-per-minute', String(rate));
  const key = (await runCli(tmp, ingestBin, args)).trim();
  assert.match(key, /^luc_pk_[0-9a-f]{32}$/);
  return key;
}

/** A fresh context and page on the test page, with the SDK's POSTs, beacons and console recorded. */
async function openPage({ key, flush = 1000, params = {}, target = endpoint }) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    window.__beacons = [];
    window.__workers = 0;
    const NativeWorker = window.Worker;
    window.Worker = class extends NativeWorker {
      constructor(...args) {
        super(...args);
        window.__workers++;
      }
    };
    window.__fetches = [];
    const nativeFetch = window.fetch.bind(window);
    window.fetch = (url, init) => {
      window.__fetches.push({ url: String(url), keepalive: init?.keepalive === true });
      return nativeFetch(url, init);
    };
    const native = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = (url, data) => {
      const r = native(url, data);
      window.__beacons.push({ url: String(url), ok: r });
      return r;
    };
  });
  const page = await context.newPage();
  const posts = [];
  const problems = [];
  page.on('request', (req) => {
    if (req.method() !== 'POST' || !req.url().startsWith(`${target}/api/sdk/replay`)) return;
    const rec = { at: Date.now(), headers: req.headers(), body: req.postDataBuffer(), status: null };
    posts.push(rec);
    req.response().then(
      (res) => {
        rec.retryAfter = res?.headers()['retry-after'] ?? null;
        rec.status = res ? res.status() : 'none';
      },
      () => (rec.status = 'failed'),
    );
  });
  page.on('requestfailed', (req) => {
    const rec = posts.find((p) => p.status === null);
    if (rec && req.method() === 'POST') rec.status = 'failed';
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  const warnings = [];
  page.on('console', (m) => {
    if (m.text().includes('[lucent]')) warnings.push(m.text());
  });
  const q = new URLSearchParams({ endpoint: target, key, flush: String(flush), ...params });
  await page.goto(`${pageOrigin}/test-page/index.html?${q}`);
  const sessionId = await page.evaluate(() => window.lucent?.sessionId);
  assert.ok(sessionId, 'the SDK started');
  const stats = () => page.evaluate(() => window.lucent.stats());
  return { context, page, posts, problems, warnings, sessionId, stats };
}

function bodyText(p) {
  const raw = p.headers['content-encoding'] === 'gzip' ? gunzipSync(p.body) : p.body;
  return raw.toString('utf8');
}

/**
 * `sessions export` of a session once it holds at least `minEvents` events, a
 * full snapshot, and an event matching `having` (batches of one page arrive in
 * several requests, the last ones by beacon as it closes: wait for the one the
 * test is about, not only for the first).
 */
async function exported(sessionId, { minEvents = 1, having = () => true } = {}) {
  return waitFor(
    async () => {
      let out;
      try {
        out = JSON.parse(await runCli(tmp, consumerBin, ['sessions', 'export', '--org', ORG, '--session', sessionId, '--store', STORE]));
      } catch {
        return null;
      }
      return out.length >= minEvents && out.some((e) => e.type === FULL_SNAPSHOT) && out.some(having) ? out : null;
    },
    { timeoutMs: 20_000, everyMs: 300, message: () => `session ${sessionId} not stored with a full snapshot and the event waited for within 20 s\n${procs.logs()}` },
  );
}

scenario('masking on (the default): a typed password, a typed value and a masked text never leave the page', async () => {
  const key = await newKey();
  const { context, page, posts, problems, sessionId } = await openPage({ key, flush: 500 });
  await page.locator('#password').pressSequentially('hunter2-PASSWORD');
  await page.locator('#name').pressSequentially('typed-VALUE-77');
  await page.locator('#add').click(); // the value becomes a list item: text on the page (masked by maskAllInputs only while in the input)
  await page.evaluate(() => window.lucent.flush());
  await waitFor(() => posts.length > 0 && posts.every((p) => p.status !== null), { timeoutMs: 10_000, message: 'no POST answered' });
  const onWire = posts.map(bodyText).join('\n');
  await page.close({ runBeforeUnload: true });
  await context.close();

  // Recorded, masked: the input events carry asterisks.
  const maskedInput = (e) => e.type === 3 && e.data?.source === 5 && /^\*+$/.test(e.data.text ?? '');
  const events = await exported(sessionId, { minEvents: 3, having: maskedInput });
  const stored = JSON.stringify(events);
  for (const [what, text] of [
    ['wire', onWire],
    ['store', stored],
  ]) {
    assert.ok(!text.includes('hunter2-PASSWORD'), `the password is not in the ${what}`);
    assert.ok(!text.includes('SECRET-TEXT-4242'), `the rr-mask text is not in the ${what}`);
    assert.ok(!/"text":"typed-VALUE-77"/.test(text), `the typed value is not in an input event in the ${what}`);
  }
  assert.ok(events.some(maskedInput), 'masked input events were stored');
  assert.deepEqual(problems, []);
});

scenario('maskAllText: no text of the page leaves it', async () => {
  const key = await newKey();
  const { context, page, posts, sessionId } = await openPage({ key, flush: 500, params: { opts: JSON.stringify({ maskAllText: true }) } });
  await page.evaluate(() => window.lucent.flush());
  await waitFor(() => posts.length > 0 && posts.every((p) => p.status !== null), { timeoutMs: 10_000, message: 'no POST answered' });
  await context.close();
  const stored = JSON.stringify(await exported(sessionId));
  assert.ok(!stored.includes('Lucent SDK test page'), 'the heading text is masked');
  assert.ok(!stored.includes('SECRET-TEXT-4242'));
});

scenario('429: Retry-After is readable cross-origin and the SDK waits that long', async () => {
  const key = await newKey(2); // two requests per minute
  const { context, page, posts, problems } = await openPage({ key, flush: 300 });
  // Keep the page busy so that there is always something to send.
  const typing = (async () => {
    for (let i = 0; i < 40 && !page.isClosed(); i++) {
      await page.locator('#name').pressSequentially(`v${i}`).catch(() => {});
      await sleep(150);
    }
  })();
  const limited = await waitFor(() => posts.find((p) => p.status === 429), {
    timeoutMs: 15_000,
    message: () => `no 429: ${JSON.stringify(posts.map((p) => p.status))}`,
  });
  const countAt429 = posts.length;
  // Without a readable Retry-After (~60 s) the SDK would retry after a backoff of 0.5-1 s.
  await sleep(5_000);
  assert.equal(posts.length, countAt429, `no request during the Retry-After wait: ${JSON.stringify(posts.map((p) => [p.status, p.at - limited.at]))}`);
  const s = await page.evaluate(() => window.lucent.stats());
  assert.equal(s.state, 'recording');
  assert.ok(s.bufferedEvents > 0, 'the refused events are kept');
  await typing;
  await context.close();
  assert.deepEqual(problems, []);
});

scenario('a 3 s visit to a large page is replayable: its full snapshot is stored', async () => {
  const key = await newKey();
  const { context, page, sessionId } = await openPage({ key, flush: 10_000, params: { bigdom: '4000' } });
  await page.locator('#name').pressSequentially('short-visit');
  await sleep(3_000 - 500);
  await page.close({ runBeforeUnload: true });
  await context.close();
  const events = await exported(sessionId);
  const snapshot = events.find((e) => e.type === FULL_SNAPSHOT);
  const size = JSON.stringify(snapshot).length;
  assert.ok(size > 300_000, `the snapshot is large (${size} B), far over one beacon`);
  assert.ok(JSON.stringify(snapshot).includes('Row 3999 of the large page'), 'the whole DOM is in it');
});

scenario('a tab switch alone: keepalive fetches whose answers are read, no beacon, and recording goes on', async () => {
  const key = await newKey();
  const { context, page, posts, problems, stats } = await openPage({ key, flush: 600_000 });
  await waitFor(() => posts.length === 1 && posts[0].status === 202, { timeoutMs: 10_000, message: 'the full snapshot was not sent at once' });
  await page.locator('#name').pressSequentially('before-switch');
  const hide = (hidden) =>
    page.evaluate((h) => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
  await hide(true);
  await waitFor(async () => posts.length >= 2 && posts.every((p) => p.status !== null) && (await stats()).bufferedEvents === 0, {
    timeoutMs: 5_000,
    message: 'no fetch on hidden',
  });
  const n1 = posts.length;
  assert.equal(posts[1].status, 202, 'the answer was read');
  assert.equal(posts[1].headers['x-lucent-api-key'], key, 'a fetch with the header, not a beacon');
  assert.equal(posts[1].headers['content-encoding'], 'gzip');
  assert.ok(posts[1].body.length <= 64_000);
  assert.ok(bodyText(posts[1]).includes('before-switch') === false, 'inputs are masked');
  assert.deepEqual(await page.evaluate(() => window.__beacons), [], 'no beacon on a tab switch');
  assert.deepEqual(await stats().then((s) => [s.state, s.bufferedEvents]), ['recording', 0]);
  // The page is back and keeps recording: the next switch sends the new events.
  await hide(false);
  await page.locator('#add').click();
  await hide(true);
  let last = null;
  await waitFor(async () => (last = await stats()).bufferedEvents === 0 && posts.length > n1 && posts.every((p) => p.status !== null), {
    timeoutMs: 5_000,
    message: () => `no fetch on the second hidden: ${JSON.stringify({ posts: posts.map((p) => p.status), last })}`,
  });
  // Events recorded while a request is out go in the next one, at once: one or more requests.
  const later = posts.slice(n1).map((p) => JSON.parse(bodyText(p)));
  assert.ok(posts.every((p) => p.status === 202));
  assert.deepEqual(
    later.map((b) => b.seq),
    later.map((_, i) => n1 + i),
  );
  assert.ok(later.some((b) => b.events.some((e) => e.type === 3 && e.data.source === 2)), 'the click after the switch was sent');
  assert.deepEqual(await page.evaluate(() => window.__beacons), []);
  assert.equal(await page.evaluate(() => window.__workers), 1, 'gzip ran in one Web Worker');
  const fetches = await page.evaluate(() => window.__fetches);
  assert.deepEqual(
    fetches.map((f) => f.keepalive),
    posts.map((_, i) => i > 0),
    'the full snapshot went by a plain fetch, everything sent on hidden with keepalive',
  );
  await context.close();
  assert.deepEqual(problems, []);
});

scenario('401 (unknown key): the SDK stops after one request, without a page error', async () => {
  const { context, page, posts, problems, warnings } = await openPage({ key: `luc_pk_${'0'.repeat(32)}`, flush: 300 });
  await waitFor(async () => (await page.evaluate(() => window.lucent.stats().state)) === 'disabled', {
    timeoutMs: 10_000,
    message: 'not disabled after a 401',
  });
  await page.locator('#name').pressSequentially('after-401');
  await sleep(1_000);
  assert.equal(posts.length, 1);
  assert.equal(posts[0].status, 401);
  assert.equal(warnings.length, 1);
  await context.close();
  assert.deepEqual(problems, []);
});

scenario('an unreachable server: the SDK keeps its buffer and backs off, without a page error', async () => {
  const deadPort = await freePort();
  const target = `http://127.0.0.1:${deadPort}`;
  const key = await newKey();
  const { context, page, problems, stats } = await openPage({ key, flush: 300, target });
  await page.locator('#name').pressSequentially('offline');
  await sleep(2_000);
  const s = await stats();
  assert.equal(s.state, 'recording');
  assert.ok(s.bufferedEvents > 0);
  assert.equal(s.sentBatches, 0);
  await context.close();
  assert.deepEqual(problems, []);
});

scenario('413: a full snapshot too large for the server is dropped, asked for again once, and the rest of the visit still arrives', async () => {
  const key = await newKey();
  const { context, page, posts, problems, warnings, stats } = await openPage({ key, flush: 500, params: { noise: '2000000' } });
  await waitFor(() => posts.some((p) => p.status === 413), {
    timeoutMs: 20_000,
    message: () => `no 413: ${JSON.stringify(posts.map((p) => [p.status, p.body?.length]))}`,
  });
  await page.locator('#add').click();
  await waitFor(async () => (await stats()).bufferedEvents === 0 && posts.every((p) => p.status !== null), {
    timeoutMs: 20_000,
    message: () => `not drained: ${JSON.stringify(posts.map((p) => p.status))}`,
  });
  await sleep(1_500);
  const statuses = posts.map((p) => p.status);
  // The snapshot alone: refused twice (the first and the one asked for again), then no more.
  assert.equal(statuses.filter((s) => s === 413).length, 2, JSON.stringify(statuses));
  assert.ok(statuses.filter((s) => s === 202).length >= 1, JSON.stringify(statuses));
  const s = await stats();
  assert.equal(s.rejectedEvents, 2);
  assert.equal(s.state, 'recording');
  assert.equal(warnings.length, 1, warnings.join('\n'));
  await context.close();
  assert.deepEqual(problems, []);
});

scenario('several tabs of one site share the key’s limit: each makes at most one request per interval, none is refused', async () => {
  const key = await newKey(); // the default 100 requests per minute, for the whole site
  const flush = 2_000;
  const tabs = [];
  for (let i = 0; i < 4; i++) tabs.push(await openPage({ key, flush }));
  const started = Date.now();
  await Promise.all(
    tabs.map(async ({ page }, t) => {
      for (let i = 0; i < 40; i++) {
        await page.locator('#name').pressSequentially(`t${t}-${i}`, { delay: 20 });
        await page.locator('#add').click();
      }
    }),
  );
  const elapsed = Date.now() - started;
  await sleep(flush + 500);
  for (const [t, { posts, context, problems }] of tabs.entries()) {
    // The first full snapshot goes at once; after it, one request per interval
    // at most. The spacing itself is the unit tests' (fake clock): here the
    // browser's timers and the machine's load move each request by tens of
    // milliseconds, so only the count over the whole visit is checked, with
    // room for the snapshot and the last flush.
    assert.ok(posts.length <= Math.ceil((elapsed + flush + 500) / flush) + 2, `tab ${t}: ${posts.length} requests in ${elapsed} ms`);
    assert.ok(posts.every((p) => p.status === 202), `tab ${t}: ${JSON.stringify(posts.map((p) => p.status))}`);
    await context.close();
    assert.deepEqual(problems, []);
  }
});

scenario('503 while the queue is locked: the batch is kept, Retry-After honoured, and delivered once the queue is back', async () => {
  const [port, admin] = await Promise.all([freePort(), freePort()]);
  procs.start('ingest-503', ingestBin, ['serve'], {
    ...common,
    LUCENT_PUBLISH_TIMEOUT_MS: '300',
    LUCENT_LISTEN: `127.0.0.1:${port}`,
    LUCENT_ADMIN_LISTEN: `127.0.0.1:${admin}`,
  });
  await waitFor(async () => (await get(`http://127.0.0.1:${admin}/readyz`))?.status === 200, { timeoutMs: 30_000, message: 'ingest-503 not ready' });
  // Another writer holds the queue's database: the ingest cannot publish in time.
  const lock = spawn('sqlite3', [path.join(tmp, 'data/queue.db')], { stdio: ['pipe', 'ignore', 'inherit'] });
  let lockError = null;
  lock.on('error', (e) => (lockError = e));
  lock.stdin.on('error', () => {});
  lock.stdin.write('BEGIN EXCLUSIVE;\n');
  await sleep(300);
  assert.equal(lockError, null, 'this scenario needs the sqlite3 command line tool (Debian: apt-get install -y sqlite3)');
  const key = await newKey();
  const target = `http://127.0.0.1:${port}`;
  const { context, page, posts, problems, stats, sessionId } = await openPage({ key, flush: 500, target });
  try {
    await waitFor(() => posts.some((p) => p.status === 503), {
      timeoutMs: 15_000,
      message: () => `no 503: ${JSON.stringify(posts.map((p) => p.status))}`,
    });
    await page.locator('#name').pressSequentially('during-503');
    const s = await stats();
    assert.equal(s.sentBatches, 0);
    assert.ok(s.bufferedEvents > 0, 'the refused batch is kept');
  } finally {
    lock.stdin.end('COMMIT;\n');
  }
  await waitFor(async () => posts.some((p) => p.status === 202) && (await stats()).bufferedEvents === 0, {
    timeoutMs: 30_000,
    message: () => `not delivered after the lock: ${JSON.stringify(posts.map((p) => p.status))}`,
  });
  const statuses = posts.map((p) => p.status);
  const first202 = statuses.indexOf(202);
  assert.ok(statuses.slice(0, first202).every((x) => x === 503), JSON.stringify(statuses));
  // Retries were spaced by the backoff and the Retry-After (read cross-origin), not a burst.
  const tried = posts.slice(0, first202 + 1);
  for (let i = 1; i < tried.length; i++) {
    const wait = Math.max(400, Number(tried[i - 1].retryAfter ?? 0) * 1000 - 50);
    assert.ok(tried[i].at - tried[i - 1].at >= wait, JSON.stringify(tried.map((p) => [p.status, p.retryAfter, p.at - tried[0].at])));
  }
  assert.ok(tried[0].retryAfter !== null, 'the 503 carried a Retry-After');
  await context.close();
  const events = await exported(sessionId);
  assert.ok(events.some((e) => e.type === FULL_SNAPSHOT));
  assert.deepEqual(problems, []);
});
