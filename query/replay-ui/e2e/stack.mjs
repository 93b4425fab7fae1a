// The whole pipeline for the replay page's browser tests, as child processes
// in a temporary directory: lucent-ingest → queue → lucent-consumer → store ←
// lucent-query, with a public key and a read secret key of one organization.
// The queue is the embedded segment log (the default), or Kafka through a tansu broker (with
// the topics created the way an operator does: `lucent-consumer topics create`).
// Processes, ports and CLI runs come from the SDK's browser-test harness.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Processes, freePort, get, lucentBinary, runCli, serveStatic, waitFor } from '../../../sdk/e2e/harness.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN_DIR = process.env.LUCENT_BIN_DIR ? path.resolve(process.env.LUCENT_BIN_DIR) : path.join(REPO, 'target/debug');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
/** Screenshots of the replay page: test artifacts, kept after the run. */
export const ARTIFACTS = path.join(REPO, 'target/replay-e2e');

/** Where tansu is: PATH, then ~/.cargo/bin (as tests/src/tansu.rs looks). */
function tansuBinary() {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), path.join(process.env.CARGO_HOME ?? path.join(os.homedir(), '.cargo'), 'bin')];
  const found = dirs.map((d) => path.join(d, 'tansu')).find((f) => fs.existsSync(f));
  if (!found) throw new Error('the tansu broker is not installed: cargo install tansu --locked --features dynostore,libsql');
  return found;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function accepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts the pipeline. `queue`: 'embedded' (segment log and SQLite store) or 'kafka'. Returns the URLs, keys
 * and `stop()`; `logs()` for failure messages. The temp dir is removed by
 * `stop(passed)` when the test passed and LUCENT_E2E_KEEP is unset.
 */
export async function startStack(org, { queue = 'embedded' } = {}) {
  const ingestBin = lucentBinary(BIN_DIR, 'lucent-ingest');
  const consumerBin = lucentBinary(BIN_DIR, 'lucent-consumer');
  const queryBin = lucentBinary(BIN_DIR, 'lucent-query');
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Chromium (\`apt-get install -y chromium\`) or set CHROMIUM_PATH`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `lucent-replay-e2e-${queue}-`));
  const procs = new Processes(tmp);
  const store = 'sqlite://data/lucent.db';
  let queueUrl = 'log://data/queue';
  const extra = {};
  if (queue === 'kafka') {
    const port = await freePort();
    const listener = `tcp://127.0.0.1:${port}`;
    fs.mkdirSync(path.join(tmp, 'tansu'));
    procs.start('tansu', tansuBinary(), ['broker', '--storage-engine', 'sqlite://tansu/tansu.db', '--listener-url', listener, '--advertised-listener-url', listener], {});
    await waitFor(() => accepts(port), { timeoutMs: 20_000, message: () => `tansu did not listen on ${port}\n${procs.logs()}` });
    queueUrl = `kafka://127.0.0.1:${port}`;
    // The broker may accept connections a moment before it serves requests.
    await waitFor(
      () =>
        runCli(tmp, consumerBin, ['topics', 'create', '--queue', queueUrl, '--partitions', '2', '--replication', '1']).then(
          () => true,
          () => false,
        ),
      { timeoutMs: 20_000, everyMs: 500, message: () => `lucent-consumer topics create failed for 20 s\n${procs.logs()}` },
    );
    Object.assign(extra, { LUCENT_CONSUMER_GROUP: 'lucent-consumer' });
  }
  const publicKey = (await runCli(tmp, ingestBin, ['keys', 'create', '--org', org, '--store', store])).trim();
  const readKey = (await runCli(tmp, queryBin, ['secrets', 'create', '--org', org, '--scope', 'read', '--name', 'replay-e2e', '--store', store])).trim();

  const [ingestPort, ingestAdmin, consumerAdmin, queryPort, queryAdmin] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const common = { LUCENT_QUEUE: queueUrl, LUCENT_STORE: store, LUCENT_KEY_REFRESH_MS: '200', ...extra };
  procs.start('ingest', ingestBin, ['serve'], { ...common, LUCENT_LISTEN: `127.0.0.1:${ingestPort}`, LUCENT_ADMIN_LISTEN: `127.0.0.1:${ingestAdmin}` });
  procs.start('consumer', consumerBin, ['run'], { ...common, LUCENT_ADMIN_LISTEN: `127.0.0.1:${consumerAdmin}` });
  procs.start('query', queryBin, ['serve'], {
    LUCENT_STORE: store,
    LUCENT_LISTEN: `127.0.0.1:${queryPort}`,
    LUCENT_ADMIN_LISTEN: `127.0.0.1:${queryAdmin}`,
    LUCENT_SECRET_REFRESH_MS: '200',
  });
  for (const admin of [ingestAdmin, consumerAdmin, queryAdmin]) {
    await waitFor(async () => (await get(`http://127.0.0.1:${admin}/readyz`))?.status === 200, {
      timeoutMs: 30_000,
      message: () => `http://127.0.0.1:${admin}/readyz not ready in 30 s\n${procs.logs()}`,
    });
  }
  const staticPort = await freePort();
  const pages = await serveStatic(REPO, staticPort);
  const queryUrl = `http://127.0.0.1:${queryPort}`;
  return {
    tmp,
    procs,
    publicKey,
    readKey,
    ingestUrl: `http://127.0.0.1:${ingestPort}`,
    queryUrl,
    /** Pages of the repository (the SDK's test page, e2e/*.html), from another origin. */
    pagesUrl: `http://127.0.0.1:${staticPort}`,
    logs: () => procs.logs(),
    /** GET a read-API path with the read key: parsed JSON, or null unless 200. */
    async api(p) {
      const res = await fetch(`${queryUrl}${p}`, { headers: { Authorization: `Bearer ${readKey}` } });
      return res.status === 200 ? res.json() : null;
    },
    /**
     * Stops ingest, then the consumer (it commits and leaves its group while
     * the broker is still up), then the query server, then the broker. Returns
     * how each ended: `{name: {code, signal}}`.
     */
    async stop(passed) {
      await new Promise((resolve) => pages.close(resolve));
      for (const name of ['ingest', 'consumer', 'query']) {
        const entry = procs.children.find((c) => c.name === name);
        if (!entry || entry.exited !== null || entry.child.exitCode !== null) continue;
        entry.child.kill('SIGTERM');
        await waitFor(() => entry.exited !== null, { timeoutMs: 10_000, everyMs: 50, message: `${name} did not stop` }).catch(() => entry.child.kill('SIGKILL'));
      }
      const exits = await procs.stopAll(10_000);
      if (passed && !process.env.LUCENT_E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
      return exits;
    },
  };
}

/** Headless Chromium, the system's (no browser download), 1280×720. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** Saves a screenshot of `page` as target/replay-e2e/NAME.png; returns the path. */
export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** The replay page, open on the list with `key` entered in the Secret key field. */
export async function openReplayPage(context, stack, key = stack.readKey) {
  const page = await context.newPage();
  const response = await page.goto(`${stack.queryUrl}/`);
  await page.locator('input[name="secretKey"]').fill(key);
  await page.locator('#key-form button[type="submit"]').click();
  return { page, response };
}

/**
 * Opens session `sessionId` (window `windowId`, or the page's choice), waits
 * until every event is loaded, plays it at 8× to the end, and returns the
 * replayed document's frame (rrweb's iframe).
 */
export async function playToEnd(page, sessionId, windowId = null) {
  const hash = `#/sessions/${encodeURIComponent(sessionId)}${windowId === null ? '' : `?window=${encodeURIComponent(windowId)}`}`;
  await page.evaluate((h) => {
    location.hash = h;
  }, hash);
  await page.locator('#player[data-stream="done"]').waitFor({ timeout: 20_000 });
  await page.locator('#speed').selectOption('8');
  await page.locator('#play').click();
  await page.locator('#player[data-state="finished"]').waitFor({ timeout: 60_000 });
  return page.frameLocator('#stage iframe');
}

/**
 * A proxy to `target` (an http://host:port URL) on a free loopback port that
 * passes everything through, except that the body of an events stream is
 * sent in `pieces` pieces `delayMs` apart (uncompressed), and its last piece
 * only once the test calls `release()`: a large session on a slow link, held
 * open for as long as the test needs to see the player start before the end,
 * however busy the machine is. Returns `{url, release(), close()}`.
 */
export async function slowEventsProxy(target, { pieces = 20, delayMs = 100 } = {}) {
  let release;
  const released = new Promise((resolve) => {
    release = resolve;
  });
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const slow = /^\/api\/v1\/sessions\/[^/]+\/events/.test(req.url);
    const headers = { ...req.headers, host: upstream.host };
    if (slow) headers['accept-encoding'] = 'identity';
    const forward = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      if (!slow) {
        up.pipe(res);
        return;
      }
      const chunks = [];
      up.on('data', (c) => chunks.push(c));
      up.on('end', async () => {
        const body = Buffer.concat(chunks);
        const size = Math.ceil(body.length / pieces);
        for (let at = 0; at < body.length; at += size) {
          if (at + size >= body.length) await released;
          res.write(body.subarray(at, at + size));
          await new Promise((resolve) => setTimeout(resolve, delayMs));
        }
        res.end();
      });
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    release,
    close: () => {
      release();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Runs `body(stack, browser)` with a pipeline (see startStack) and Chromium,
 * then stops both; on failure, adds the processes' logs to the test's output
 * and keeps the temp dir. Our three processes must exit cleanly on SIGTERM.
 */
export async function withPipeline(t, org, options, body) {
  const stack = await startStack(org, options);
  const browser = await launchBrowser();
  let passed = false;
  let exits = null;
  try {
    await body(stack, browser);
    passed = true;
  } catch (e) {
    t.diagnostic(`logs:\n${stack.logs()}`);
    throw e;
  } finally {
    await browser.close();
    exits = await stack.stop(passed);
    if (!passed) t.diagnostic(`temp dir kept: ${stack.tmp}`);
  }
  for (const name of ['ingest', 'consumer', 'query']) {
    if (exits[name]?.code !== 0) assert.fail(`${name} did not exit cleanly on SIGTERM: ${JSON.stringify(exits[name])}`);
  }
}
