// Issue 15: compression in a Web Worker where available, the main-thread compressor as the fallback.
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { type WorkerLike, workerCompressor } from '../src/transport';
import type { Deps } from '../src/types';
import { harness, testGzip } from './helpers';

/** A worker that answers like the real one (gzip, or `bytes: null`), on a later turn of the event loop. */
class FakeWorker implements WorkerLike {
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  received: string[] = [];
  terminated = false;
  constructor(private readonly mode: 'ok' | 'null' | 'silent' = 'ok') {}
  postMessage(message: unknown): void {
    const { id, text } = message as { id: number; text: string };
    this.received.push(text);
    if (this.mode === 'silent') return;
    setImmediate(() =>
      this.onmessage?.({ data: { id, bytes: this.mode === 'ok' ? new Uint8Array(gzipSync(Buffer.from(text))) : null } }),
    );
  }
  terminate(): void {
    this.terminated = true;
  }
}

function mainThread() {
  const calls: string[] = [];
  const compress = async (text: string) => {
    calls.push(text);
    return new Uint8Array(gzipSync(Buffer.from(text)));
  };
  return { calls, compress };
}

const gunzip = (b: Uint8Array) => gunzipSync(b).toString('utf8');

describe('workerCompressor', () => {
  it('compresses in the worker, one worker for all calls, answers matched by id', async () => {
    const main = mainThread();
    const workers: FakeWorker[] = [];
    const compress = workerCompressor(main.compress, () => {
      const w = new FakeWorker();
      workers.push(w);
      return w;
    })!;
    const out = await Promise.all(['{"a":1}', '{"b":"wörld"}', 'x'.repeat(10_000)].map((t) => compress(t)));
    expect(out.map(gunzip)).toEqual(['{"a":1}', '{"b":"wörld"}', 'x'.repeat(10_000)]);
    expect(workers).toHaveLength(1);
    expect(workers[0].received).toHaveLength(3);
    expect(main.calls).toHaveLength(0);
  });

  it('falls back to the main thread where no worker can be made (no Worker, or a CSP refusing blob: workers)', async () => {
    for (const make of [() => null, () => { throw new DOMException('blocked by CSP', 'SecurityError'); }]) {
      const main = mainThread();
      const compress = workerCompressor(main.compress, make)!;
      expect(gunzip(await compress('{"c":3}'))).toBe('{"c":3}');
      expect(main.calls).toEqual(['{"c":3}']);
    }
  });

  it('a worker that fails a call leaves that call to the main thread', async () => {
    const main = mainThread();
    const compress = workerCompressor(main.compress, () => new FakeWorker('null'))!;
    expect(gunzip(await compress('{"d":4}'))).toBe('{"d":4}');
    expect(main.calls).toEqual(['{"d":4}']);
  });

  it('a worker that errors hands its pending calls, and every later one, to the main thread', async () => {
    const main = mainThread();
    const w = new FakeWorker('silent');
    const compress = workerCompressor(main.compress, () => w)!;
    const p = compress('{"e":5}');
    w.onerror?.(new Event('error'));
    expect(gunzip(await p)).toBe('{"e":5}');
    expect(w.terminated).toBe(true);
    expect(gunzip(await compress('{"f":6}'))).toBe('{"f":6}');
    expect(main.calls).toEqual(['{"e":5}', '{"f":6}']);
  });

  it('a worker that does not answer within 5 s is given up for the main thread', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const main = mainThread();
      const w = new FakeWorker('silent');
      const compress = workerCompressor(main.compress, () => w)!;
      const p = compress('{"g":7}');
      vi.advanceTimersByTime(4_999);
      expect(main.calls).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(gunzip(await p)).toBe('{"g":7}');
      expect(w.terminated).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('is null where there is no compression at all', () => {
    expect(workerCompressor(null, () => new FakeWorker())).toBeNull();
  });
});

// Serialization stays on the main thread (README, "Serialization stays on the main
// thread": posting the events to the worker cost as much as JSON.stringify in
// Chromium). What the worker does is gzip the very body the main thread built, so
// a request is the same whichever thread compressed it.
describe('the client with the compression worker', () => {
  async function run(compress: Deps['compress'], failWorkerAfter?: FakeWorker) {
    let n = 0;
    const h = harness({}, { compress, newId: () => `fixed-${++n}` });
    h.recorder.snapshot(0, 300_000, 'd'); // a large full snapshot: sent at once
    await h.clock.advance(1);
    if (failWorkerAfter) failWorkerAfter.onerror?.(new Event('error'));
    h.recorder.events(1, 200, 500);
    await h.client.flush();
    return h.transport.posts;
  }

  it('sends byte for byte what the main-thread path sends, before and after the worker fails', async () => {
    const main = await run(testGzip);
    expect(main.length).toBeGreaterThanOrEqual(2);

    const fallback = mainThread();
    const w = new FakeWorker();
    const viaWorker = await run(workerCompressor(fallback.compress, () => w), w);
    expect(w.received).toHaveLength(1); // the snapshot's batch went through the worker…
    expect(fallback.calls.length).toBe(main.length - 1); // …the rest through the fallback once it failed
    expect(viaWorker.map((p) => p.headers)).toEqual(main.map((p) => p.headers));
    expect(viaWorker.map((p) => p.raw)).toEqual(main.map((p) => p.raw));
    expect(main.every((p) => p.headers['Content-Encoding'] === 'gzip' && p.raw[0] === 0x1f && p.raw[1] === 0x8b)).toBe(true);
  });
});
