import type { Clock, Compressor, Transport, TransportResponse } from './types';

/**
 * The browser transport: `fetch` for regular sends, `navigator.sendBeacon` for
 * the last sends of a page.
 */
export const fetchTransport: Transport = {
  async post(url, body, headers, init) {
    // `X-Lucent-Api-Key` and `Content-Encoding` make this a non-simple CORS
    // request: the browser sends a preflight first, which the server answers.
    // No cookies: the key is the only credential.
    // `keepalive` lets a request sent when the tab is hidden outlive the page;
    // `signal` aborts it after the client's timeout.
    const res = await fetch(url, {
      method: 'POST',
      headers,
      body: body as BodyInit,
      credentials: 'omit',
      mode: 'cors',
      keepalive: init?.keepalive === true,
      signal: init?.signal,
    });
    // Readable cross-origin because the server sends Access-Control-Expose-Headers: Retry-After.
    return { status: res.status, retryAfter: res.headers.get('Retry-After') };
  },

  beacon(url, body) {
    try {
      if (typeof navigator !== 'undefined' && typeof navigator.sendBeacon === 'function') {
        // text/plain keeps the beacon a CORS "simple" request (no preflight).
        // A gzip body (Uint8Array) is recognised by the server from its magic bytes.
        return navigator.sendBeacon(url, new Blob([body as BlobPart], { type: 'text/plain' }));
      }
      // No sendBeacon: a keepalive fetch outlives the page the same way (same 64 KiB quota).
      fetch(url, { method: 'POST', body: body as BodyInit, keepalive: true, credentials: 'omit', mode: 'cors' }).catch(() => {});
      return true;
    } catch {
      return false;
    }
  },
};

/** gzip with `CompressionStream`, where the browser has it; `null` otherwise (send plain JSON). */
export function gzipCompressor(): Compressor {
  if (typeof CompressionStream !== 'function') return null;
  return async (text: string) => {
    const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  };
}

/** A worker that has not answered after this long is given up. */
const WORKER_TIMEOUT_MS = 5_000;

/** The part of `Worker` the compressor uses (a fake in tests). */
export interface WorkerLike {
  postMessage(message: unknown): void;
  onmessage: ((e: { data: unknown }) => void) | null;
  onerror: ((e: unknown) => void) | null;
  terminate(): void;
}

/** The worker's code: gzip each `{id, text}` with CompressionStream, answer `{id, bytes}` (bytes null on failure). */
const WORKER_SOURCE = `onmessage=async e=>{const{id:i,text:t}=e.data;try{const s=new Blob([t]).stream().pipeThrough(new CompressionStream('gzip'));const b=new Uint8Array(await new Response(s).arrayBuffer());postMessage({id:i,bytes:b},[b.buffer])}catch(_){postMessage({id:i,bytes:null})}}`;

function blobWorker(): WorkerLike | null {
  if (typeof Worker !== 'function' || typeof URL === 'undefined' || typeof URL.createObjectURL !== 'function') return null;
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
  try {
    return new Worker(url) as unknown as WorkerLike;
  } finally {
    // The worker keeps its script once it has started loading it.
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}

/**
 * gzip in a Web Worker, so that compressing a large batch does not take the
 * page's main thread; `fallback` (the main-thread compressor) where there is no
 * Worker, where the worker cannot start (a Content-Security-Policy without
 * `worker-src blob:`) or when it fails: then for good, pending calls included.
 */
export function workerCompressor(fallback: Compressor, makeWorker: () => WorkerLike | null = blobWorker): Compressor {
  if (!fallback) return null;
  const main = fallback;
  let worker: WorkerLike | null = null;
  let broken = false;
  let nextId = 0;
  type Pending = { text: string; resolve: (b: Uint8Array) => void; reject: (e: unknown) => void; timer: unknown };
  const pending = new Map<number, Pending>();
  const settle = (id: number, bytes: Uint8Array | null) => {
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    clearTimeout(p.timer as ReturnType<typeof setTimeout>);
    if (bytes) p.resolve(bytes);
    else main(p.text).then(p.resolve, p.reject);
  };
  const fail = () => {
    broken = true;
    worker?.terminate();
    worker = null;
    for (const id of [...pending.keys()]) settle(id, null);
  };
  return (text: string) => {
    if (!broken && !worker) {
      try {
        worker = makeWorker();
      } catch {
        worker = null;
      }
      if (!worker) broken = true;
      else {
        worker.onmessage = (e) => {
          const { id, bytes } = e.data as { id: number; bytes: Uint8Array | null };
          settle(id, bytes);
        };
        worker.onerror = fail;
      }
    }
    if (broken || !worker) return main(text);
    const id = nextId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      // A worker that never answers must not hold a batch back: main thread, for good.
      pending.set(id, { text, resolve, reject, timer: setTimeout(fail, WORKER_TIMEOUT_MS) });
      try {
        worker!.postMessage({ id, text });
      } catch {
        fail();
      }
    });
  };
}

/** A Retry-After beyond this is treated as this: a bad proxy must not mute a page for hours. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else {
    const date = Date.parse(v);
    if (Number.isNaN(date)) return null;
    ms = Math.max(0, date - now);
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

/** `transport.post` with a timeout: aborted (and rejected, like a network error) after `timeoutMs`. */
export function postWithTimeout(
  deps: { clock: Clock; transport: Transport },
  url: string,
  body: Uint8Array | string,
  headers: Record<string, string>,
  keepalive: boolean,
  timeoutMs: number,
): Promise<TransportResponse> {
  const { clock, transport } = deps;
  const ctl = typeof AbortController === 'function' ? new AbortController() : undefined;
  return new Promise<TransportResponse>((resolve, reject) => {
    const timer = clock.setTimeout(() => {
      ctl?.abort();
      reject(new Error('timeout'));
    }, timeoutMs);
    const end = () => clock.clearTimeout(timer);
    let p: Promise<TransportResponse>;
    try {
      p = transport.post(url, body, headers, { keepalive, signal: ctl?.signal });
    } catch (e) {
      end();
      reject(e);
      return;
    }
    p.then(
      (r) => {
        end();
        resolve(r);
      },
      (e) => {
        end();
        reject(e);
      },
    );
  });
}
