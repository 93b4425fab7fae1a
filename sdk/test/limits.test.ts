// Issue 15, defects 4, 5 and 6: a byte-bounded buffer, a request timeout, 413 on the full snapshot.
import { describe, expect, it } from 'vitest';
import { accepted, harness, status } from './helpers';

describe('byte-bounded buffer', () => {
  it('holds at most maxBufferBytes (10 MiB by default), drops the oldest non-snapshot events first, then asks for a new snapshot', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = () => status(503);
    h.recorder.snapshot(0, 500_000);
    h.recorder.events(1, 3);
    await h.client.flush(); // committed, failing
    h.recorder.snapshot(3, 500_000); // a later snapshot, still queued
    // 200 canvas-sized events of 100 KB: 20 MB.
    for (let i = 4; i < 204; i++) h.recorder.one(i, 100_000);
    const s = h.client.stats();
    expect(s.bufferedBytes).toBeLessThanOrEqual(10 * 1024 * 1024);
    expect(s.bufferedBytes).toBeGreaterThan(9 * 1024 * 1024);
    expect(s.droppedEvents).toBe(204 - s.bufferedEvents);

    h.transport.reply = () => accepted();
    await h.clock.advance(600_000 * 20);
    const ids = h.transport.storedIds();
    // The committed batch, the queued snapshot, and the newest events.
    expect(ids.slice(0, 4)).toEqual([0, 1, 2, 3]);
    expect(ids[ids.length - 1]).toBe(203);
    expect(h.recorder.fullSnapshots).toBe(1);
  });
});

describe('request timeout', () => {
  it('aborts a request without an answer after requestTimeoutMs and retries it', async () => {
    const h = harness({ flushIntervalMs: 600_000, requestTimeoutMs: 30_000 });
    h.transport.reply = (_p, i) => (i === 0 ? new Promise(() => {}) : accepted());
    h.recorder.events(0, 2);
    void h.client.flush();
    await h.clock.advance(29_999);
    expect(h.transport.posts).toHaveLength(1);
    expect(h.transport.posts[0].signal?.aborted).toBe(false);
    await h.clock.advance(1);
    expect(h.transport.posts[0].signal?.aborted).toBe(true);
    await h.clock.advance(1_000);
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([0, 0]);
    expect(h.transport.storedIds()).toEqual([0, 1]);
  });
});

describe('413', () => {
  it('splits the batch holding the full snapshot until it fits; nothing is lost', async () => {
    const h = harness({ flushIntervalMs: 600_000 }, { compress: null });
    h.transport.reply = (p) => (p.raw.length > 5_000 ? status(413) : accepted());
    h.recorder.snapshot(0, 3_000);
    h.recorder.events(1, 21, 300);
    await h.client.flush();
    expect(h.transport.storedIds()).toEqual([...Array(21).keys()]);
    expect(h.client.stats()).toMatchObject({ rejectedEvents: 0, bufferedEvents: 0 });
    const seqs = [...h.transport.stored().keys()].sort((a, b) => a - b);
    expect(seqs).toEqual([...seqs.keys()]);
  });

  it('drops a single event that is too large, and asks rrweb for a new full snapshot', async () => {
    const h = harness({ flushIntervalMs: 600_000 }, { compress: null });
    h.transport.reply = (p) => (p.raw.length > 5_000 ? status(413) : accepted());
    h.recorder.one(0, 100);
    h.recorder.one(1, 8_000);
    h.recorder.one(2, 100);
    await h.client.flush();
    expect(h.transport.storedIds()).toEqual([0, 2]);
    expect(h.client.stats()).toMatchObject({ rejectedEvents: 1 });
    expect(h.recorder.fullSnapshots).toBe(1);
    expect(h.warnings.join()).toMatch(/413/);
  });

  it('a full snapshot too large on its own is asked for again once, not endlessly', async () => {
    const h = harness({ flushIntervalMs: 600_000 }, { compress: null });
    h.transport.reply = (p) => (p.raw.length > 5_000 ? status(413) : accepted());
    h.recorder.takeFullSnapshot = function () {
      this.fullSnapshots++;
      this.snapshot(100 + this.fullSnapshots, 8_000);
    };
    h.recorder.snapshot(0, 8_000);
    await h.clock.advance(600_000 * 5);
    expect(h.recorder.fullSnapshots).toBe(1);
  });
});
