import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../src/transport';
import { accepted, harness, status } from './helpers';

describe('5xx and network errors', () => {
  it('retry the same batch, same seq and same bytes, with jittered exponential backoff', async () => {
    const replies = [status(500), status(502), 'network-error' as const, accepted()];
    const h = harness({ flushIntervalMs: 600_000, retryBaseMs: 1_000, retryMaxMs: 60_000 });
    h.transport.reply = (_p, i) => replies[i];
    h.recorder.events(0, 5);
    await h.client.flush();
    expect(h.transport.posts).toHaveLength(1);

    // random() = 0.5: the delays are three quarters of 1 s, 2 s, 4 s.
    for (const [delay, expected] of [
      [750, 2],
      [1_500, 3],
      [3_000, 4],
    ]) {
      await h.clock.advance(delay - 1);
      expect(h.transport.posts).toHaveLength(expected - 1);
      await h.clock.advance(1);
      expect(h.transport.posts).toHaveLength(expected);
    }
    const first = h.transport.posts[0];
    for (const p of h.transport.posts) {
      expect(p.batch.seq).toBe(0);
      expect(p.raw.equals(first.raw)).toBe(true);
    }
    expect(h.transport.storedIds()).toEqual([0, 1, 2, 3, 4]);
    expect(h.client.stats()).toMatchObject({ bufferedEvents: 0, sentBatches: 1 });
  });

  it('draws each delay uniformly in [b/2, b), b = min(cap, base * 2^n): never 0', async () => {
    const draws = [0, 0.999, 0.25, 0.999, 0.999, 0.999];
    let d = 0;
    const h = harness({ flushIntervalMs: 600_000, retryBaseMs: 1_000, retryMaxMs: 5_000 }, { random: () => draws[d++] ?? 0.5 });
    const times: number[] = [];
    h.transport.reply = () => {
      times.push(h.clock.now());
      return status(503);
    };
    h.recorder.events(0, 1);
    await h.client.flush();
    await h.clock.advance(60_000);
    const gaps = times.slice(1, draws.length + 1).map((t, i) => t - times[i]);
    // Bounds 1 s, 2 s, 4 s, then capped at 5 s; a draw of 0 still waits half the bound.
    expect(gaps).toEqual([500, 1_999, 2_500, 4_997, 4_997, 4_997]);
  });

  it('events recorded during a backoff go out after the retried batch, with later seqs', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = (_p, i) => (i === 0 ? status(500) : accepted());
    h.recorder.events(0, 2);
    await h.client.flush();
    h.recorder.events(2, 4);
    await h.clock.advance(750);
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([0, 0]);
    // The next batch waits for the interval: the retry was this interval's request.
    await h.clock.advance(600_000);
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([0, 0, 1]);
    expect(h.transport.storedIds()).toEqual([0, 1, 2, 3]);
  });

  it('flush() during a backoff does not jump the queue', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = (_p, i) => (i === 0 ? status(500) : accepted());
    h.recorder.events(0, 1);
    await h.client.flush();
    await h.client.flush();
    expect(h.transport.posts).toHaveLength(1);
  });

  it('honours a Retry-After on 503 when it is longer than the backoff', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = (_p, i) => (i === 0 ? status(503, '5') : accepted());
    h.recorder.events(0, 1);
    await h.client.flush();
    // 5 s, plus up to retryBaseMs of jitter (random() = 0.5).
    await h.clock.advance(5_499);
    expect(h.transport.posts).toHaveLength(1);
    await h.clock.advance(1);
    expect(h.transport.posts).toHaveLength(2);
  });
});

describe('429', () => {
  it('waits Retry-After seconds, keeps the events buffered, then retries the same seq', async () => {
    const h = harness({ flushIntervalMs: 1_000 });
    h.transport.reply = (_p, i) => (i === 0 ? status(429, '7') : accepted());
    h.recorder.events(0, 3);
    await h.clock.advance(1_000);
    expect(h.transport.posts).toHaveLength(1);

    h.recorder.events(3, 6);
    // Interval ticks come and go during the wait (7 s, plus jitter up to retryBaseMs): nothing is sent.
    await h.clock.advance(7_499);
    expect(h.transport.posts).toHaveLength(1);
    expect(h.client.stats().bufferedEvents).toBe(6);

    await h.clock.advance(1);
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([0, 0]);
    await h.clock.advance(1_000);
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([0, 0, 1]);
    expect(h.transport.posts[1].raw.equals(h.transport.posts[0].raw)).toBe(true);
    expect(h.transport.storedIds()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(h.warnings).toEqual([]);
  });

  it('understands an HTTP-date Retry-After', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    const at = new Date(h.clock.now() + 3_000).toUTCString();
    h.transport.reply = (_p, i) => (i === 0 ? status(429, at) : accepted());
    h.recorder.events(0, 1);
    await h.client.flush();
    await h.clock.advance(3_499);
    expect(h.transport.posts).toHaveLength(1);
    await h.clock.advance(1);
    expect(h.transport.posts).toHaveLength(2);
  });

  it('backs off when Retry-After is missing or unreadable', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = (_p, i) => (i === 0 ? status(429) : accepted());
    h.recorder.events(0, 1);
    await h.client.flush();
    await h.clock.advance(749);
    expect(h.transport.posts).toHaveLength(1);
    await h.clock.advance(1);
    expect(h.transport.posts).toHaveLength(2);
  });

  it('sends no beacon while rate limited, and delivers those events afterwards', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = (_p, i) => (i === 0 ? status(429, '10') : accepted());
    h.recorder.events(0, 2);
    await h.client.flush();
    h.recorder.events(2, 4);
    h.lifecycle.hide('hidden');
    h.lifecycle.hide('pagehide');
    await h.clock.advance(0);
    expect(h.transport.beacons).toHaveLength(0);
    expect(h.transport.posts).toHaveLength(1);
    await h.clock.advance(10_500 + 600_000);
    expect(h.transport.storedIds()).toEqual([0, 1, 2, 3]);
  });

  it('parses Retry-After and bounds absurd values', () => {
    expect(parseRetryAfter('3', 0)).toBe(3_000);
    expect(parseRetryAfter(' 0 ', 0)).toBe(0);
    expect(parseRetryAfter(null, 0)).toBeNull();
    expect(parseRetryAfter('soon', 0)).toBeNull();
    expect(parseRetryAfter('86400', 0)).toBe(600_000);
    expect(parseRetryAfter(new Date(5_000).toUTCString(), 1_000)).toBe(4_000);
  });
});

describe('401', () => {
  it('stops recording and sending, and says so once', async () => {
    const h = harness({ flushIntervalMs: 1_000 });
    h.transport.reply = () => status(401);
    h.recorder.events(0, 3);
    await h.clock.advance(1_000);
    expect(h.transport.posts).toHaveLength(1);

    expect(h.recorder.running).toBe(false);
    expect(h.client.stats()).toMatchObject({ state: 'disabled', bufferedEvents: 0 });
    h.recorder.events(3, 6); // a recorder that keeps emitting is ignored
    await h.clock.advance(60_000);
    await h.client.flush();
    h.lifecycle.hide('pagehide');
    expect(h.transport.posts).toHaveLength(1);
    expect(h.transport.beacons).toHaveLength(0);
    expect(h.clock.pendingTimers()).toBe(0);
    expect(h.warnings).toHaveLength(1);
    expect(h.warnings[0]).toMatch(/401/);
  });
});

describe('400, 415', () => {
  it.each([400, 415])('%i drops that batch, warns once, and the next batch gets the next seq', async (code) => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = (_p, i) => (i < 2 ? status(code) : accepted());
    h.recorder.events(0, 2);
    await h.client.flush();
    h.recorder.events(2, 4);
    await h.client.flush();
    h.recorder.events(4, 6);
    await h.client.flush();
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([0, 1, 2]);
    expect(h.transport.storedIds()).toEqual([4, 5]);
    expect(h.client.stats()).toMatchObject({ rejectedEvents: 4, bufferedEvents: 0 });
    expect(h.warnings).toHaveLength(1);
    expect(h.warnings[0]).toContain(String(code));
    expect(h.recorder.running).toBe(true);
  });
});
