import { describe, expect, it } from 'vitest';
import { API_KEY, REPLAY_URL, accepted, harness, status } from './helpers';

const QUOTA = 64 * 1024;

/** Deterministic pseudo-random sizes and characters, some multi-byte in UTF-8. */
function varied(h: ReturnType<typeof harness>, n: number, seed = 7): void {
  let x = seed;
  const rnd = () => ((x = (x * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const chars = ['x', 'é', '中', '😀'];
  for (let i = 0; i < n; i++) h.recorder.one(i, Math.floor(rnd() * 6_000), chars[Math.floor(rnd() * chars.length)]);
}

function expectEveryBeaconWithinQuota(h: ReturnType<typeof harness>): void {
  for (const b of h.transport.beacons) {
    expect(b.bytes).toBeLessThanOrEqual(QUOTA);
    expect(b.url).toBe(`${REPLAY_URL}?api_key=${API_KEY}`);
  }
}

describe('beacons on pagehide / hidden', () => {
  it('every beacon is at most 64 KiB and every event is delivered exactly once', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    varied(h, 400); // ~1.5 MB of UTF-8, with 2-, 3- and 4-byte characters
    h.lifecycle.hide('pagehide');

    expect(h.transport.beacons.length).toBeGreaterThan(20);
    expectEveryBeaconWithinQuota(h);
    expect(h.transport.beacons.map((b) => b.batch.seq)).toEqual([...h.transport.beacons.keys()]);
    expect(h.transport.storedIds()).toEqual([...Array(400).keys()]);
    // Nothing is left for fetch.
    await h.clock.advance(600_000);
    expect(h.transport.posts).toHaveLength(0);
    expect(h.client.stats()).toMatchObject({ bufferedEvents: 0, sentEvents: 400 });
  });

  it('a beacon the browser refuses (quota) leaves its events for fetch, with no seq gap', async () => {
    const h = harness({ flushIntervalMs: 10_000 });
    h.transport.beaconQuota = QUOTA; // all beacons in flight share 64 KiB
    varied(h, 200, 3);
    h.lifecycle.hide('pagehide');
    const beaconed = h.transport.beacons.length;
    expect(beaconed).toBeGreaterThan(0);
    expect(h.transport.beacons.reduce((s, b) => s + b.bytes, 0)).toBeLessThanOrEqual(QUOTA);

    // The page lives on (back/forward cache): the rest goes by fetch, one request per interval.
    await h.clock.advance(10_000 * 40);
    const seqs = [...h.transport.beacons.map((b) => b.batch.seq), ...h.transport.posts.map((p) => p.batch.seq)];
    expect(seqs).toEqual([...seqs.keys()]);
    expect(h.transport.storedIds()).toEqual([...Array(200).keys()]);
  });

  it('an event too big for a beacon waits, with everything after it, for fetch', async () => {
    const h = harness({ flushIntervalMs: 10_000 });
    h.recorder.one(0, 100);
    h.recorder.one(1, 100_000); // e.g. a full snapshot
    h.recorder.one(2, 100);
    h.lifecycle.hide('pagehide');
    expect(h.transport.beacons.map((b) => b.batch.events.length)).toEqual([1]);

    await h.clock.advance(10_000);
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([1]);
    expect(h.transport.storedIds()).toEqual([0, 1, 2]);
  });

  it('beacons again a batch whose plain fetch is in flight (the browser cancels it on unload), gzip, then what came after it', async () => {
    let release!: () => void;
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = () => new Promise((r) => (release = () => r(accepted())));
    h.recorder.events(0, 3);
    const flushed = h.client.flush();
    await h.clock.advance(0);
    h.recorder.events(3, 5);
    h.lifecycle.hide('pagehide');
    expect(h.transport.beacons.map((b) => [b.batch.seq, b.gzip])).toEqual([
      [0, true],
      [1, false],
    ]);
    release();
    await flushed;
    expect(h.transport.storedIds()).toEqual([0, 1, 2, 3, 4]);
    expect(h.client.stats()).toMatchObject({ sentEvents: 5, bufferedEvents: 0 });
  });

  it('leaves a batch on its way in a keepalive request to it', async () => {
    let release!: () => void;
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = () => new Promise((r) => (release = () => r(accepted())));
    h.recorder.events(0, 3);
    h.lifecycle.hide('hidden');
    await h.clock.advance(0);
    expect(h.transport.posts.map((p) => p.keepalive)).toEqual([true]);
    h.recorder.events(3, 5);
    h.lifecycle.hide('pagehide');
    // Not sent again; what came after it goes by beacon under the next seq.
    expect(h.transport.beacons.map((b) => b.batch.seq)).toEqual([1]);
    h.transport.reply = () => accepted();
    release();
    await h.clock.advance(0);
    expect(h.transport.storedIds()).toEqual([0, 1, 2, 3, 4]);
  });

  it('beacons a batch whose retry is due, under its own seq', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = () => status(500);
    h.recorder.events(0, 2);
    await h.client.flush();
    h.recorder.events(2, 3);
    h.clock.jump(10_000); // past the backoff; the retry timer has not run yet
    h.lifecycle.hide('pagehide');
    expect(h.transport.beacons.map((b) => b.batch.seq)).toEqual([0, 1]);
    expect(h.transport.beacons[0].batch.events).toHaveLength(2);
  });

  it('sends no beacon during a 5xx backoff: a page that lives on sends those events later', async () => {
    const h = harness({ flushIntervalMs: 600_000 });
    h.transport.reply = (_p, i) => (i === 0 ? status(503) : accepted());
    h.recorder.events(0, 2);
    await h.client.flush();
    h.recorder.events(2, 3);
    h.lifecycle.hide('pagehide');
    expect(h.transport.beacons).toHaveLength(0);
    await h.clock.advance(601_000);
    expect(h.transport.storedIds()).toEqual([0, 1, 2]);
  });
});
