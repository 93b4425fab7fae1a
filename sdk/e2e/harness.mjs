// Helpers for the browser end-to-end test (browser.test.mjs): Lucent's binaries
// as child processes in a temporary directory, a static file server, Chromium's
// NetLog, and the CLI reads. Nothing here is specific to one assertion.

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A loopback port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Path of one of Lucent's binaries; a clear error when it was not built. */
export function lucentBinary(binDir, name) {
  const file = path.join(binDir, name);
  if (!fs.existsSync(file)) {
    throw new Error(
      `${file} is missing: build the server first with \`cargo build --workspace --bins\` ` +
        '(from the repository root), or point LUCENT_BIN_DIR at a directory holding lucent-ingest and lucent-consumer',
    );
  }
  return file;
}

/**
 * Child processes started by the test. All of them are killed when the test
 * ends, fails, or the node process exits or is interrupted.
 */
export class Processes {
  constructor(dir) {
    this.dir = dir;
    this.children = [];
    this.onExit = () => this.killAllNow();
    process.on('exit', this.onExit);
    for (const signal of ['SIGINT', 'SIGTERM']) {
      process.once(signal, () => {
        this.killAllNow();
        process.exit(130);
      });
    }
  }

  /** Starts `file args…` in the temp dir with `env` added, output to `dir/NAME.log`. */
  start(name, file, args, env) {
    const log = path.join(this.dir, `${name}.log`);
    const fd = fs.openSync(log, 'a');
    const child = spawn(file, args, {
      cwd: this.dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', fd, fd],
    });
    fs.closeSync(fd);
    const entry = { name, child, log, exited: null };
    child.on('exit', (code, signal) => {
      entry.exited = { code, signal };
    });
    this.children.push(entry);
    return entry;
  }

  /**
   * SIGTERM every child, SIGKILL what is still there after `graceMs`. Returns
   * how each child ended: `{name: {code, signal}}` (signal SIGKILL: it did not stop in time).
   */
  async stopAll(graceMs = 5000) {
    const running = this.children.filter((c) => c.exited === null && c.child.exitCode === null);
    for (const c of running) c.child.kill('SIGTERM');
    const deadline = Date.now() + graceMs;
    while (running.some((c) => c.exited === null) && Date.now() < deadline) await sleep(50);
    this.killAllNow();
    while (running.some((c) => c.exited === null)) await sleep(20);
    process.off('exit', this.onExit);
    return Object.fromEntries(this.children.map((c) => [c.name, c.exited]));
  }

  killAllNow() {
    for (const c of this.children) {
      if (c.exited === null && c.child.exitCode === null) {
        try {
          c.child.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }

  /** The last lines of every child's log, for failure messages. */
  logs(lines = 40) {
    return this.children
      .map((c) => {
        let text = '';
        try {
          text = fs.readFileSync(c.log, 'utf8');
        } catch {
          // no log
        }
        const tail = text.trimEnd().split('\n').slice(-lines).join('\n');
        const state = c.exited ? `exited ${JSON.stringify(c.exited)}` : 'running';
        return `--- ${c.name} (${state}) ${c.log}\n${tail}`;
      })
      .join('\n');
  }
}

/** Runs a CLI to completion in `cwd`, returns stdout; throws with stderr on failure. */
export async function runCli(cwd, file, args) {
  try {
    const { stdout } = await execFileP(file, args, { cwd, maxBuffer: 64 << 20 });
    return stdout;
  } catch (e) {
    throw new Error(`${path.basename(file)} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

/** GET `url`: `{status, text}`, or null when nothing answers. */
export async function get(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, text: await res.text() };
  } catch {
    return null;
  }
}

/** Polls `check` (async, truthy = done) every `everyMs` until `timeoutMs`; returns its value or throws `message()`. */
export async function waitFor(check, { timeoutMs, everyMs = 100, message }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(typeof message === 'function' ? message() : message);
    await sleep(everyMs);
  }
}

/** Sum of the samples of Prometheus metric `name` whose labels include every `labels` pair. */
export function metricSum(text, name, labels = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
};

/** A static file server for `root` on 127.0.0.1:`port` (GET/HEAD only, no directory listing). */
export function serveStatic(root, port) {
  const base = path.resolve(root);
  const server = http.createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.resolve(base, `.${pathname}`);
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !file.startsWith(base + path.sep)) {
      res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 403 : 405).end();
      return;
    }
    fs.readFile(file, (err, data) => {
      if (err) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      res.writeHead(200, {
        'content-type': MIME[path.extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : data);
    });
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/**
 * The HTTP requests in a Chromium NetLog (`--log-net-log=FILE`, written as the
 * browser runs and completed when it exits). NetLog is recorded by the
 * browser's network service, so unlike DevTools it still sees a keepalive
 * request (a beacon) after the page that sent it is gone.
 *
 * Returns one entry per URL request:
 * `{ id, method, url, startMs, requestHeaders, status, statusMs, responseHeaders }`,
 * times in epoch milliseconds, headers as a lower-cased name → value map.
 */
export function readNetLog(file) {
  let text = fs.readFileSync(file, 'utf8');
  let log;
  try {
    log = JSON.parse(text);
  } catch {
    // A browser that did not exit cleanly leaves the closing brackets off.
    text = text.trimEnd().replace(/,$/, '');
    log = JSON.parse(`${text}]}`);
  }
  const types = log.constants.logEventTypes;
  const offset = Number(log.constants.timeTickOffset);
  const byId = new Map();
  const entry = (id) => {
    if (!byId.has(id)) {
      byId.set(id, { id, method: null, url: null, startMs: null, requestHeaders: null, status: null, statusMs: null, responseHeaders: null });
    }
    return byId.get(id);
  };
  for (const e of log.events) {
    const p = e.params ?? {};
    const t = Number(e.time) + offset;
    if (e.type === types.URL_REQUEST_START_JOB) {
      const r = entry(e.source.id);
      if (r.method === null) Object.assign(r, { method: p.method, url: p.url, startMs: t });
    } else if (e.type === types.HTTP_TRANSACTION_SEND_REQUEST_HEADERS) {
      const r = entry(e.source.id);
      if (r.requestHeaders === null) r.requestHeaders = headerMap(p.headers ?? []);
    } else if (e.type === types.HTTP_TRANSACTION_READ_RESPONSE_HEADERS) {
      const r = entry(e.source.id);
      const m = /^HTTP\/\S+\s+(\d{3})/.exec(p.headers?.[0] ?? '');
      if (m && r.status === null) Object.assign(r, { status: Number(m[1]), statusMs: t, responseHeaders: headerMap(p.headers.slice(1)) });
    }
  }
  return [...byId.values()].filter((r) => r.method !== null).sort((a, b) => a.startMs - b.startMs || a.id - b.id);
}

function headerMap(lines) {
  const out = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}
