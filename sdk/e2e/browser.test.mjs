// End-to-end test of the SDK in a real browser against the real server.
//
//   lucent-ingest + lucent-consumer (built binaries, SQLite backends, temp dir)
//   a static server for sdk/ on another localhost port (another origin: CORS applies)
//   headless Chromium (/usr/bin/chromium, driven by playwright-core; no browser download)
//
// The page is typed into and clicked, reloaded, used again and closed; then the
// test checks the wire (preflight, fetch, the final beacon), the SDK's batches
// (ids, seq) and what `sessions export` / `sessions list` return.
//
// How requests are observed (DevTools alone cannot see beacons: Chromium does not
// report sendBeacon requests to Playwright at all, and after page.close the page's
// DevTools target is gone while its keepalive requests are still being sent):
//   - Chromium's NetLog (--log-net-log): the browser's network service records
//     every request it sends, with method, URL, headers, status and time, the
//     after-close beacon included. Used for the preflight, for how each request
//     was sent, and to time the final beacon after page.close.
//   - Playwright `request` events: the bodies of the SDK's fetch POSTs (gzip).
//   - An init script that wraps navigator.sendBeacon (and remembers the text of
//     Blobs built from strings) and appends each call — URL, body, the browser's
//     answer, time — to localStorage, read back from a new page of the same
//     origin after the close. It proves the final batch went through sendBeacon
//     and gives its body (seq, events), which the stored session must match.
//
// Run with `npm run e2e` (builds the bundle first). Needs:
//   - Chromium at /usr/bin/chromium (Debian: `apt-get install -y chromium`) or CHROMIUM_PATH;
//   - the server binaries: `cargo build --workspace --bins` (target/debug/), or LUCENT_BIN_DIR.
// LUCENT_E2E_KEEP=1 keeps the temp dir (logs, databases, netlog); it is kept on failure too.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import {
  Processes,
  freePort,
  get,
  lucentBinary,
  metricSum,
  readNetLog,
  runCli,
  serveStatic,
  sleep,
  waitFor,
} from './harness.mjs';

const SDK_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN_DIR = process.env.LUCENT_BIN_DIR
  ? path.resolve(process.env.LUCENT_BIN_DIR)
  : path.resolve(SDK_DIR, '../target/debug');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ORG = 'e2e-org';
const FLUSH_MS = 1000;
const BEACON_LOG_KEY = '__lucentE2eBeacons';

const PAGE1_VALUES = ['page1-alpha', 'page1-bravo', 'page1-charlie'];
const PAGE2_VALUES = ['page2-delta', 'page2-echo'];

// rrweb: EventType and IncrementalSource / MouseInteractions numbers.
const FULL_SNAPSHOT = 2;
const INCREMENTAL = 3;
const META = 4;
const SOURCE_MUTATION = 0;
const SOURCE_MOUSE_INTERACTION = 2;
const SOURCE_INPUT = 5;
const MOUSE_CLICK = 2;

/**
 * Runs in every page before its scripts: records each navigator.sendBeacon call
 * in localStorage (which outlives the page). To know a beacon's body, the text
 * of every Blob built from strings is remembered (the SDK sends a text/plain Blob).
 */
function beaconRecorder(key) {
  const texts = new WeakMap();
  const NativeBlob = window.Blob;
  class RecordingBlob extends NativeBlob {
    constructor(parts, options) {
      super(parts ?? [], options);
      if (Array.isArray(parts) && parts.every((p) => typeof p === 'string')) texts.set(this, parts.join(''));
      else if (Array.isArray(parts) && parts.length === 1 && parts[0] instanceof Uint8Array) {
        // A gzip body: remembered as base64.
        let bin = '';
        for (const byte of parts[0]) bin += String.fromCharCode(byte);
        texts.set(this, `b64:${btoa(bin)}`);
      }
    }
  }
  window.Blob = RecordingBlob;
  const native = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = function sendBeacon(url, data) {
    const ok = native(url, data);
    let body = null;
    if (typeof data === 'string') body = data;
    else if (data && texts.has(data)) body = texts.get(data);
    try {
      const log = JSON.parse(localStorage.getItem(key) || '[]');
      log.push({
        at: Date.now(),
        url: String(url),
        ok,
        body,
        blobType: data && typeof data === 'object' ? data.type : null,
        visibility: document.visibilityState,
      });
      localStorage.setItem(key, JSON.stringify(log));
    } catch {
      // Recording must never change what the page does.
    }
    return ok;
  };
}

test('browser SDK → ingest → consumer: preflight, fetch, reload, beacon on close, replayable export', { timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const ingestBin = lucentBinary(BIN_DIR, 'lucent-ingest');
  const consumerBin = lucentBinary(BIN_DIR, 'lucent-consumer');
  assert.ok(
    fs.existsSync(CHROMIUM),
    `${CHROMIUM} is missing: install Chromium with \`apt-get install -y chromium\` (Debian), or set CHROMIUM_PATH`,
  );
  assert.ok(
    fs.existsSync(path.join(SDK_DIR, 'dist/lucent.bundle.min.js')),
    'dist/lucent.bundle.min.js is missing: run `npm run build` (npm run e2e does)',
  );

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lucent-e2e-'));
  const procs = new Processes(tmp);
  let context = null;
  let staticServer = null;
  let passed = false;
  let failedChecks = 0;
  /** A named group of assertions, reported as a subtest. */
  const check = (name, fn) =>
    t.test(name, async () => {
      try {
        await fn();
      } catch (e) {
        failedChecks++;
        throw e;
      }
    });
  const note = (msg) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)}s ${msg}`);

  try {
    // ---- 1. the server ----------------------------------------------------------
    const store = 'sqlite://data/lucent.db';
    const key = (await runCli(tmp, ingestBin, ['keys', 'create', '--org', ORG, '--store', store])).trim();
    assert.match(key, /^luc_pk_[0-9a-f]{32}$/, `keys create printed ${JSON.stringify(key)}`);

    const [ingestPort, ingestAdmin, consumerAdmin, staticPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const common = { LUCENT_QUEUE: 'sqlite://data/queue.db', LUCENT_STORE: store, LUCENT_KEY_REFRESH_MS: '200' };
    procs.start('ingest', ingestBin, ['serve'], {
      ...common,
      LUCENT_LISTEN: `127.0.0.1:${ingestPort}`,
      LUCENT_ADMIN_LISTEN: `127.0.0.1:${ingestAdmin}`,
    });
    procs.start('consumer', consumerBin, ['run'], { ...common, LUCENT_ADMIN_LISTEN: `127.0.0.1:${consumerAdmin}` });
    for (const admin of [ingestAdmin, consumerAdmin]) {
      await waitFor(async () => (await get(`http://127.0.0.1:${admin}/readyz`))?.status === 200, {
        timeoutMs: 30_000,
        message: () => `http://127.0.0.1:${admin}/readyz not ready in 30 s\n${procs.logs()}`,
      });
    }
    const endpoint = `http://127.0.0.1:${ingestPort}`;
    const replayUrl = `${endpoint}/api/sdk/replay`;
    const ingestMetrics = async () => (await get(`http://127.0.0.1:${ingestAdmin}/metrics`))?.text ?? '';
    const consumerMetrics = async () => (await get(`http://127.0.0.1:${consumerAdmin}/metrics`))?.text ?? '';
    note(`ingest ${endpoint}, consumer admin :${consumerAdmin}, key created for ${ORG}`);

    // ---- 2. the page, from another origin ---------------------------------------
    staticServer = await serveStatic(SDK_DIR, staticPort);
    const pageOrigin = `http://127.0.0.1:${staticPort}`;
    const pageUrl = `${pageOrigin}/test-page/index.html?endpoint=${encodeURIComponent(endpoint)}&key=${key}&flush=${FLUSH_MS}&mask=0`;

    // ---- 3. the browser ---------------------------------------------------------
    const netLog = path.join(tmp, 'netlog.json');
    context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
        `--log-net-log=${netLog}`,
      ],
    });
    await context.addInitScript(beaconRecorder, BEACON_LOG_KEY);

    /** The SDK's fetch POSTs as Playwright sees them (beacons never show up here). */
    const posts = [];
    context.on('request', (req) => {
      if (req.method() !== 'POST' || !req.url().startsWith(replayUrl)) return;
      const rec = {
        at: Date.now(),
        url: req.url(),
        resourceType: req.resourceType(),
        headers: req.headers(),
        body: req.postDataBuffer(),
        status: null,
      };
      posts.push(rec);
      req.response().then(
        (res) => (rec.status = res ? res.status() : 'no response'),
        (e) => (rec.status = `failed: ${e.message}`),
      );
    });
    const consoleErrors = [];

    const page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));

    const ids = () =>
      page.evaluate(() => ({ sessionId: window.lucent?.sessionId, windowId: window.lucent?.windowId, error: window.lucentError ?? null }));
    const stats = () => page.evaluate(() => window.lucent.stats());
    /** Waits until the SDK holds no event and every POST it made has been answered. */
    const waitFlushed = async (what) => {
      await waitFor(
        async () => {
          const s = await stats();
          return s.state === 'recording' && s.bufferedEvents === 0 && posts.every((p) => p.status !== null);
        },
        { timeoutMs: 10_000, everyMs: 50, message: () => `no flush (${what}) within 10 s: ${JSON.stringify(posts.map((p) => p.status))}` },
      );
    };
    const typeAndAdd = async (value) => {
      await page.locator('#name').pressSequentially(value);
      await page.locator('#add').click();
    };

    /**
     * Types and adds a value that must still be buffered when the page goes away
     * (so that it leaves by beacon): right after a flush (the next one is ~1 s
     * away), then checks that no fetch went out meanwhile; if one did (a slow
     * machine), goes again with the next name. Returns the values typed.
     */
    const lastInteraction = async (prefix) => {
      const typed = [];
      for (const name of ['one', 'two', 'three', 'four']) {
        await waitFlushed(`before ${prefix}`);
        const postsBefore = posts.length;
        const value = `${prefix}-${name}`;
        typed.push(value);
        await typeAndAdd(value);
        const s = await stats();
        if (posts.length === postsBefore && s.bufferedEvents > 0) return typed;
        note(`a flush sent ${value} before the page went away; trying again`);
      }
      assert.fail(`could not leave the page with ${prefix} still buffered: a flush came first 4 times`);
    };

    await page.goto(pageUrl);
    const first = await ids();
    assert.equal(first.error, null, `the test page did not start: ${first.error}`);
    assert.ok(first.sessionId, 'window.lucent.sessionId is set');
    for (const v of PAGE1_VALUES) await typeAndAdd(v);
    await waitFlushed('page 1');
    assert.ok(posts.length >= 1, 'page 1 sent at least one batch with fetch');
    const unloadValues = await lastInteraction('page1-unload');
    note(`page 1: ${PAGE1_VALUES.length + unloadValues.length} values typed and added, ${posts.length} fetch POST(s) answered; reloading`);

    const reloadAt = Date.now();
    await page.reload();
    const second = await ids();
    assert.deepEqual(
      { sessionId: second.sessionId, windowId: second.windowId },
      { sessionId: first.sessionId, windowId: first.windowId },
      'the reload continues the session in the same window',
    );
    for (const v of PAGE2_VALUES) await typeAndAdd(v);
    await waitFlushed('page 2');
    const finalValues = await lastInteraction('final');
    const finalValue = finalValues.at(-1);
    const fetchPostsBeforeClose = posts.length;
    const closeAt = Date.now();
    await page.close({ runBeforeUnload: true });
    note(`page 2: ${PAGE2_VALUES.length + finalValues.length} values typed and added, page closed`);

    // Read the beacon log back from a new page of the same origin (no SDK: no ?key=).
    const reader = await context.newPage();
    await reader.goto(`${pageOrigin}/test-page/index.html`);
    const beacons = await reader.evaluate((k) => JSON.parse(localStorage.getItem(k) || '[]'), BEACON_LOG_KEY);
    await reader.close();
    const afterClose = beacons.filter((b) => b.at >= closeAt);
    const onReload = beacons.filter((b) => b.at >= reloadAt && b.at < closeAt);
    const sentBeacons = beacons.filter((b) => b.ok);

    // ---- 5a. wait for the server side ------------------------------------------
    const expectedRequests = posts.length + sentBeacons.length;
    await waitFor(async () => metricSum(await ingestMetrics(), 'lucent_ingest_requests_total', { route: 'replay' }) >= expectedRequests, {
      timeoutMs: 15_000,
      message: () => `ingest did not answer ${expectedRequests} replay requests within 15 s\n${procs.logs()}`,
    });
    await waitFor(
      async () => {
        const m = await consumerMetrics();
        return metricSum(m, 'lucent_consumer_messages_total') >= expectedRequests && metricSum(m, 'lucent_consumer_lag_messages') === 0;
      },
      { timeoutMs: 30_000, message: () => `the consumer did not handle ${expectedRequests} messages within 30 s\n${procs.logs()}` },
    );
    await sleep(200); // nothing else may arrive: checked below through the metrics
    const ingestText = await ingestMetrics();
    await context.close(); // the browser exits: the NetLog is complete
    context = null;
    note(`server drained ${expectedRequests} requests (${posts.length} fetch, ${sentBeacons.length} beacon)`);

    // ---- 4. the wire -------------------------------------------------------------
    const wire = readNetLog(netLog).filter((r) => r.url.startsWith(replayUrl));
    const wirePosts = wire.filter((r) => r.method === 'POST');

    await check('CORS preflight answered 204 before the first fetch POST', () => {
      const preflights = wire.filter((r) => r.method === 'OPTIONS');
      assert.ok(preflights.length >= 1, 'the browser sent a preflight OPTIONS to the ingest');
      const [preflight] = preflights;
      assert.equal(wire[0], preflight, 'the first request to the ingest is the preflight');
      assert.equal(preflight.status, 204);
      assert.equal(preflight.requestHeaders.origin, pageOrigin);
      assert.equal(preflight.requestHeaders['access-control-request-method'], 'POST');
      assert.match(preflight.requestHeaders['access-control-request-headers'] ?? '', /x-lucent-api-key/);
      assert.equal(preflight.responseHeaders['access-control-allow-origin'], '*');
      assert.match(preflight.responseHeaders['access-control-allow-headers'] ?? '', /X-Lucent-Api-Key/i);
      const firstPost = wirePosts[0];
      assert.ok(firstPost, 'a POST followed');
      assert.ok(preflight.statusMs <= firstPost.startMs, 'the preflight was answered before the first POST started');
      assert.equal(firstPost.requestHeaders['x-lucent-api-key'], key);
      assert.equal(firstPost.status, 202);
    });

    await check('batches: fetch with header and gzip while open, sendBeacon with ?api_key= after close; all 202', () => {
      for (const p of posts) {
        assert.equal(p.resourceType, 'fetch');
        assert.equal(p.url, replayUrl, 'fetch carries no key in the URL');
        assert.equal(p.headers['x-lucent-api-key'], key);
        assert.equal(p.headers['content-encoding'], 'gzip');
        assert.equal(p.status, 202);
      }
      // The wire, as the browser sent it: every POST accepted, fetches then beacons.
      assert.equal(wirePosts.length, expectedRequests, 'POSTs on the wire = fetches seen + beacons sent');
      for (const r of wirePosts) assert.equal(r.status, 202, `${r.method} ${r.url} answered ${r.status}`);
      const wireFetches = wirePosts.filter((r) => r.requestHeaders['x-lucent-api-key'] === key);
      const wireBeacons = wirePosts.filter((r) => r.url.includes('?api_key='));
      assert.equal(wireFetches.length, posts.length);
      assert.equal(wireBeacons.length, sentBeacons.length);

      assert.ok(afterClose.length >= 1, `the SDK called sendBeacon after page.close (beacon log: ${JSON.stringify(beacons.map((b) => b.at - closeAt))})`);
      for (const b of afterClose) {
        assert.equal(b.ok, true, 'the browser accepted the beacon');
        assert.equal(b.url, `${replayUrl}?api_key=${key}`);
        assert.equal(b.blobType, 'text/plain');
      }
      // The beacons of the reload (page 1's pagehide) carry page 1's last interaction.
      assert.ok(onReload.length >= 1 && onReload.every((b) => b.ok), 'page 1 sent a beacon when it unloaded');
      const unloadValue = unloadValues.at(-1);
      assert.ok(
        onReload.some((b) => beaconJson(b).events.some((e) => isInput(e, unloadValue))),
        `page 1's last interaction (${unloadValue}) left in a beacon on the reload`,
      );
      // NetLog times come from the browser's clock, in whole milliseconds: allow a little.
      const onWireAfterClose = wirePosts.filter((r) => r.startMs >= closeAt - 50);
      assert.equal(onWireAfterClose.length, afterClose.length, 'as many POSTs left the browser after the close as beacons were sent');
      for (const r of onWireAfterClose) {
        assert.equal(r.url, `${replayUrl}?api_key=${key}`);
        assert.equal(r.requestHeaders['x-lucent-api-key'], undefined, 'a beacon has no custom header');
        assert.equal(r.requestHeaders['sec-fetch-mode'], 'no-cors', 'a text/plain beacon is a no-cors request (no preflight)');
        assert.match(r.requestHeaders['content-type'] ?? '', /^text\/plain/);
        assert.equal(r.status, 202);
      }
      assert.equal(posts.length, fetchPostsBeforeClose, 'no fetch after the close');
      const finalBatch = afterClose.map((b) => beaconJson(b));
      assert.ok(
        finalBatch.some((batch) => batch.events.some((e) => isInput(e, finalValue))),
        `the last interaction (${finalValue}) left in a beacon after the close`,
      );
      // The server counted the same: nothing but 202s on the replay route.
      assert.equal(metricSum(ingestText, 'lucent_ingest_requests_total', { route: 'replay' }), expectedRequests);
      assert.equal(metricSum(ingestText, 'lucent_ingest_requests_total', { route: 'replay', status: '202' }), expectedRequests);
    });

    // Every batch the SDK sent, from its bodies: fetch (gzip) and beacons (gzip or plain JSON).
    const batches = [];
    for (const p of posts) {
      const raw = p.headers['content-encoding'] === 'gzip' ? gunzipSync(p.body) : p.body;
      batches.push({ via: 'fetch', at: p.at, ...JSON.parse(raw.toString('utf8')) });
    }
    for (const b of sentBeacons) {
      assert.ok(b.body !== null, 'the beacon body was recorded');
      batches.push({ via: 'beacon', at: b.at, ...beaconJson(b) });
    }
    batches.sort((a, b) => a.seq - b.seq);

    await check('one session and window across the reload; seq 0,1,2… continues after it', () => {
      for (const b of batches) {
        assert.equal(b.sessionId, first.sessionId);
        assert.equal(b.windowId, first.windowId);
        assert.equal(b.metadata?.url, pageUrl);
      }
      assert.deepEqual(
        batches.map((b) => b.seq),
        batches.map((_, i) => i),
        `seqs sent: ${batches.map((b) => `${b.seq}(${b.via})`).join(' ')}`,
      );
      // Each page load begins with rrweb's Meta event, in the first batch the page
      // sends: the batches from the second one on are page 2's.
      const withMeta = batches.filter((b) => b.events.some((e) => e.type === META));
      assert.equal(withMeta.length, 2, 'one batch with a Meta event per page load');
      assert.equal(withMeta[0], batches[0], 'page 1 begins with seq 0');
      const k = batches.indexOf(withMeta[1]);
      const [page1, page2] = [batches.slice(0, k), batches.slice(k)];
      assert.ok(page1.length >= 1 && page2.length >= 1, 'both pages sent batches');
      assert.equal(page2[0].seq, page1.at(-1).seq + 1, 'page 2 continues the sequence after page 1 (and its beacon)');
      assert.equal(page1.at(-1).via, 'beacon', "page 1's last batch left by beacon when it unloaded");
      assert.ok(page2.every((b) => b.at >= reloadAt), 'page 2 sent its batches after the reload');
      // Page 1 recorded everything before page 2 recorded anything: no batch mixes the two.
      const page2Start = Math.min(...page2.flatMap((b) => b.events.map((e) => e.timestamp)));
      for (const b of page1) for (const e of b.events) assert.ok(e.timestamp <= page2Start, `seq ${b.seq} holds only page 1 events`);
      note(`seqs ${batches.map((b) => `${b.seq}:${b.via}:${b.events.length}`).join(' ')} (seq:via:events); page 2 from seq ${page2[0].seq}`);
    });

    // ---- 5b. what the store returns -------------------------------------------------
    const exported = JSON.parse(
      await runCli(tmp, consumerBin, ['sessions', 'export', '--org', ORG, '--session', first.sessionId, '--store', store]),
    );
    const listed = (await runCli(tmp, consumerBin, ['sessions', 'list', '--org', ORG, '--store', store]))
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));

    await check('sessions export: the stream as sent, in seq order, each event once', () => {
      const sent = batches.flatMap((b) => b.events);
      assert.equal(exported.length, sent.length, 'as many events stored as sent');
      // The export is ordered by window, then seq: it is the batches' events in seq
      // order, which it could not be if a seq had restarted (it would overwrite).
      assert.deepEqual(exported, sent);
      const keys = exported.map((e) => JSON.stringify(e));
      assert.equal(new Set(keys).size, keys.length, 'no event is stored twice');
      const ts = exported.map((e) => e.timestamp);
      assert.ok(ts.every((x, i) => i === 0 || ts[i - 1] <= x), 'timestamps never go back');
    });

    await check('sessions export: full snapshots and every interaction exactly once', () => {
      const snapshots = exported.filter((e) => e.type === FULL_SNAPSHOT);
      assert.equal(snapshots.length, 2, 'a full snapshot per page load');
      const buttonIds = new Set(snapshots.map((s) => findNode(s.data.node, (n) => n.attributes?.id === 'add')?.id));
      assert.ok(!buttonIds.has(undefined), 'the button is in each snapshot');
      const values = [...PAGE1_VALUES, ...unloadValues, ...PAGE2_VALUES, ...finalValues];
      for (const v of values) {
        assert.equal(exported.filter((e) => isInput(e, v)).length, 1, `input event with text ${v}`);
        const added = exported
          .filter((e) => e.type === INCREMENTAL && e.data.source === SOURCE_MUTATION)
          .flatMap((e) => e.data.adds ?? [])
          .filter((a) => findNode(a.node, (n) => n.textContent === v));
        assert.equal(added.length, 1, `list item ${v} added once`);
      }
      const clicks = exported.filter(
        (e) => e.type === INCREMENTAL && e.data.source === SOURCE_MOUSE_INTERACTION && e.data.type === MOUSE_CLICK && buttonIds.has(e.data.id),
      );
      assert.equal(clicks.length, values.length, 'one click per value');
      // Page 1's interactions come before page 2's snapshot, page 2's after it.
      const at = (pred) => exported.findIndex(pred);
      const secondSnapshot = exported.indexOf(snapshots[1]);
      for (const v of [...PAGE1_VALUES, ...unloadValues]) assert.ok(at((e) => isInput(e, v)) < secondSnapshot, `${v} before the reload`);
      for (const v of [...PAGE2_VALUES, ...finalValues]) assert.ok(at((e) => isInput(e, v)) > secondSnapshot, `${v} after the reload`);
      assert.equal(exported.at(-1).timestamp >= exported.find((e) => isInput(e, finalValue)).timestamp, true);
    });

    await check('sessions list: the session once, with its event count', () => {
      const rows = listed.filter((r) => r.sessionId === first.sessionId);
      assert.equal(rows.length, 1, `sessions list: ${JSON.stringify(listed)}`);
      assert.equal(listed.length, 1, 'no other session in the org');
      assert.equal(rows[0].eventCount, exported.length);
      assert.equal(rows[0].hasFullSnapshot, true);
      assert.equal(rows[0].firstUrl, pageUrl);
      assert.match(rows[0].userAgent ?? '', /HeadlessChrome/);
    });

    assert.deepEqual(
      consoleErrors.filter((m) => m.includes('[lucent]') || m.startsWith('pageerror')),
      [],
      'no SDK warning or page error',
    );
    // Both processes stop cleanly on SIGTERM.
    const exits = await procs.stopAll(10_000);
    assert.deepEqual(exits, { ingest: { code: 0, signal: null }, consumer: { code: 0, signal: null } }, 'clean exits on SIGTERM');
    passed = failedChecks === 0;
    note(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    t.diagnostic(`server logs:\n${procs.logs()}`);
    throw e;
  } finally {
    if (context) await context.close().catch(() => {});
    if (staticServer) await new Promise((resolve) => staticServer.close(resolve));
    await procs.stopAll();
    if (passed && !process.env.LUCENT_E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
    else t.diagnostic(`temp dir kept: ${tmp}`);
  }
});

/** The batch a beacon carried: plain JSON, or gzip (recorded as `b64:…`). */
function beaconJson(b) {
  if (b.body.startsWith('b64:')) return JSON.parse(gunzipSync(Buffer.from(b.body.slice(4), 'base64')).toString('utf8'));
  return JSON.parse(b.body);
}

function isInput(e, text) {
  return e.type === INCREMENTAL && e.data?.source === SOURCE_INPUT && e.data.text === text;
}

/** Depth-first search of an rrweb serialized node tree. */
function findNode(node, pred) {
  if (!node) return undefined;
  if (pred(node)) return node;
  for (const child of node.childNodes ?? []) {
    const found = findNode(child, pred);
    if (found) return found;
  }
  return undefined;
}
