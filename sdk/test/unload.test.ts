// Issue 15, defects 2 and 3 and the pagehide-while-compressing part of 7: tab switches and unloads.
import { describe, expect, it } from 'vitest';
import { accepted, harness, noise, status, testGzip } from './helpers';

describe('tab switch (visibilitychange to hidden)', () => {
  it('is not an unload: a compressed keepalive fetch, no beacon, and recording goes on', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.recorder.events(0, 3);
    h.lifecycle.hide('hidden');
    await h.clock.advance(0);
    expect(h.transport.beacons).toHaveLength(0);
    expect(h.transport.posts).toHaveLength(1);
    const p = h.transport.posts[0];
    expect(p.keepalive).toBe(true);
    expect(p.headers['Content-Encoding']).toBe('gzip');
    expect(p.raw.length).toBeLessThanOrEqual(64_000);
    expect(h.recorder.running).toBe(true);
    expect(h.client.stats().state).toBe('recording');
    h.recorder.events(3, 4);
    await h.client.flush();
    expect(h.transport.storedIds()).toEqual([0, 1, 2, 3]);
  });

  it('a refusal (429 / 503) is seen: the batch is kept and sent again later', async () => {
    for (const refusal of [status(429, '3'), status(503, '3')]) {
      const h = harness({ flushIntervalMs: 600_000 });
      h.transport.reply = (_p, i) => (i === 0 ? refusal : accepted());
      h.recorder.events(0, 3);
      h.lifecycle.hide('hidden');
      await h.clock.advance(0);
      expect(h.transport.beacons).toHaveLength(0);
      expect(h.client.stats()).toMatchObject({ sentBatches: 0, bufferedEvents: 3 });
      await h.clock.advance(5_000);
      expect(h.transport.posts.map((p) => [p.batch.seq, p.status])).toEqual([
        [0, refusal.status],
        [0, 202],
      ]);
      expect(h.client.stats()).toMatchObject({ sentBatches: 1, bufferedEvents: 0 });
    }
  });

  it('splits what is buffered into keepalive requests of at most 64 KiB compressed', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    for (let i = 0; i < 60; i++) h.recorder.one(i, 0, '');
    // ~600 KB that gzip shrinks only about five times.
    for (let i = 60; i < 120; i++) h.recorder.emit!({ type: 3, timestamp: i, data: { source: 0, i, pad: noise(10_000, i) } });
    h.lifecycle.hide('hidden');
    await h.clock.advance(0);
    expect(h.transport.posts.length).toBeGreaterThanOrEqual(3);
    for (const p of h.transport.posts) {
      expect(p.keepalive).toBe(true);
      expect(p.raw.length).toBeLessThanOrEqual(64_000);
    }
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([...h.transport.posts.keys()]);
    expect(h.transport.storedIds()).toEqual([...Array(120).keys()]);
  });
});

describe('tab switch with a large backlog', () => {
  it('sends at most 4 keepalive requests at once; the rest goes at the usual pace', async () => {
    const h = harness({ flushIntervalMs: 10_000 });
    for (let i = 0; i < 200; i++) h.recorder.emit!({ type: 3, timestamp: i, data: { source: 0, i, pad: noise(10_000, i + 1) } });
    h.lifecycle.hide('hidden');
    await h.clock.advance(0);
    expect(h.transport.posts.length).toBe(4);
    expect(h.transport.posts.every((p) => p.keepalive)).toBe(true);
    await h.clock.advance(9_999);
    expect(h.transport.posts.length).toBe(4);
    await h.clock.advance(1);
    expect(h.transport.posts.length).toBe(5);
  });
});

describe('unload (pagehide)', () => {
  it('a 3 s visit with a large DOM is replayable: the full snapshot went at load, the rest by beacon', async () => {
    const h = harness({ flushIntervalMs: 10_000 });
    h.recorder.snapshot(0, 300_000); // far over a beacon
    for (let i = 1; i <= 30; i++) {
      await h.clock.advance(100);
      h.recorder.one(i, 200);
    }
    h.lifecycle.hide('pagehide');
    // The page is gone: fetches no longer get through.
    h.transport.reply = () => 'network-error';
    await h.clock.advance(60_000);
    expect(h.transport.storedIds()).toEqual([...Array(31).keys()]);
    const stored = [...h.transport.stored().values()].flatMap((b) => b.events);
    expect(stored[0].type).toBe(2);
  });

  it('a batch being compressed when the page goes is beaconed, not lost, and not sent twice', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const h = harness({ flushIntervalMs: 600_000 }, { compress: async (t) => (await gate, testGzip(t)) });
    h.recorder.events(0, 3);
    void h.client.flush();
    await h.clock.advance(0);
    expect(h.transport.posts).toHaveLength(0); // still compressing
    h.recorder.events(3, 4);
    h.lifecycle.hide('pagehide');
    expect(h.transport.beacons.map((b) => b.batch.seq)).toEqual([0, 1]);
    expect(h.transport.storedIds()).toEqual([0, 1, 2, 3]);
    release();
    await h.clock.advance(600_000);
    expect(h.transport.posts).toHaveLength(0);
  });

  it('a batch in a plain fetch too large for a beacon stays; what came after it is beaconed', async () => {
    const h = harness({ flushIntervalMs: 600_000 }, { compress: null });
    h.transport.reply = () => new Promise(() => {}); // the page goes before the answer
    h.recorder.events(0, 2, 100_000);
    void h.client.flush();
    await h.clock.advance(0);
    h.recorder.events(2, 4);
    h.lifecycle.hide('pagehide');
    expect(h.transport.beacons.map((b) => [b.batch.seq, b.batch.events.length])).toEqual([[1, 2]]);
  });

  it('a batch too large for one beacon that never went out is split into beacons', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const h = harness({ flushIntervalMs: 600_000 }, { compress: async (t) => (await gate, testGzip(t)) });
    h.recorder.events(0, 40, 5_000); // ~200 KB in one planned batch
    void h.client.flush();
    await h.clock.advance(0);
    h.lifecycle.hide('pagehide');
    for (const b of h.transport.beacons) expect(b.bytes).toBeLessThanOrEqual(64_000);
    expect(h.transport.beacons.map((b) => b.batch.seq)).toEqual([...h.transport.beacons.keys()]);
    expect(h.transport.storedIds()).toEqual([...Array(40).keys()]);
    release();
  });
});
