// Issue 15, defects 1, 2 (prompt snapshot) and 7 (backoff): how often the SDK sends.
import { describe, expect, it } from 'vitest';
import { accepted, harness, status } from './helpers';

describe('request pacing', () => {
  it('a busy tab makes at most one request per flushIntervalMs (no back-to-back drain loop)', async () => {
    const h = harness({ flushIntervalMs: 10_000 });
    // Every answer takes 200 ms; the page records an event every 100 ms for 60 s.
    h.transport.reply = () => new Promise((r) => h.clock.setTimeout(() => r(accepted()), 200));
    for (let i = 0; i < 600; i++) {
      h.recorder.one(i);
      await h.clock.advance(100);
    }
    const times = h.transport.posts.map((p) => p.at!);
    expect(times.length).toBeLessThanOrEqual(6);
    for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(10_000);
    await h.clock.advance(20_000);
    expect(h.transport.storedIds()).toEqual([...Array(600).keys()]);
  });

  it('sends a full snapshot at once, not an interval later', async () => {
    const h = harness({ flushIntervalMs: 10_000 });
    h.recorder.snapshot(0, 200_000);
    h.recorder.events(1, 3);
    await h.clock.advance(0);
    expect(h.transport.posts).toHaveLength(1);
    expect(h.transport.posts[0].batch.events.map((e) => e.type)).toEqual([2, 3, 3]);
    // What follows waits for the interval again.
    h.recorder.events(3, 5);
    await h.clock.advance(9_999);
    expect(h.transport.posts).toHaveLength(1);
    await h.clock.advance(1);
    expect(h.transport.posts).toHaveLength(2);
  });

  it('Retry-After: 0 does not cause a burst: backoff has a floor and grows', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = (_p, i) => (i < 50 ? status(429, '0') : accepted());
    h.recorder.events(0, 1);
    await h.client.flush();
    await h.clock.advance(1_000);
    // random() = 0.5: 0.75 s + 0.5 s jitter after the first 429, so one request in the first second.
    expect(h.transport.posts.length).toBeLessThanOrEqual(2);
    await h.clock.advance(10_000);
    expect(h.transport.posts.length).toBeLessThanOrEqual(5);
  });

  it('a 429 retry is jittered: two tabs told the same Retry-After do not come back together', async () => {
    const when = async (r: number) => {
      const h = harness({ flushIntervalMs: 600_000 }, { random: () => r });
      h.transport.reply = (_p, i) => (i === 0 ? status(429, '5') : accepted());
      h.recorder.events(0, 1);
      await h.client.flush();
      const start = h.clock.now();
      await h.clock.advance(20_000);
      return h.transport.posts[1].at! - start;
    };
    const a = await when(0);
    const b = await when(0.99);
    expect(a).toBeGreaterThanOrEqual(5_000);
    expect(b).toBeGreaterThanOrEqual(5_000);
    expect(b - a).toBeGreaterThanOrEqual(900);
  });
});
