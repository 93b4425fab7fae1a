import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ID_PATTERN } from '../src/identity';
import { API_KEY, REPLAY_URL, harness } from './helpers';

describe('batching', () => {
  it('sends the buffer every flushIntervalMs with the contract headers and body', async () => {
    const h = harness({ flushIntervalMs: 10_000 });
    h.recorder.events(0, 3);
    await h.clock.advance(9_999);
    expect(h.transport.posts).toHaveLength(0);
    await h.clock.advance(1);
    expect(h.transport.posts).toHaveLength(1);

    const post = h.transport.posts[0];
    expect(post.url).toBe(REPLAY_URL);
    expect(post.headers).toEqual({
      'X-Lucent-Api-Key': API_KEY,
      'Content-Type': 'application/json',
      'Content-Encoding': 'gzip',
    });
    // The raw bytes are gzip (magic 1f 8b) and decode to the documented batch object.
    expect([...post.raw.subarray(0, 2)]).toEqual([0x1f, 0x8b]);
    const body = JSON.parse(gunzipSync(post.raw).toString('utf8'));
    expect(Object.keys(body)).toEqual(['sessionId', 'windowId', 'seq', 'events', 'metadata']);
    expect(body.sessionId).toBe(h.client.sessionId);
    expect(body.windowId).toBe(h.client.windowId);
    expect(body.seq).toBe(0);
    expect(body.events.map((e: { data: { i: number } }) => e.data.i)).toEqual([0, 1, 2]);
    expect(body.events[0]).toMatchObject({ type: 3, timestamp: 1_700_000_000_000 });
    expect(body.metadata).toMatchObject({ url: 'https://site.test/page?q=1' });

    // The next interval sends only what is new, with the next seq.
    h.recorder.events(3, 5);
    await h.clock.advance(10_000);
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([0, 1]);
    expect(h.transport.storedIds()).toEqual([0, 1, 2, 3, 4]);
  });

  it('sends plain JSON without Content-Encoding where gzip is unavailable', async () => {
    const h = harness({}, { compress: null });
    h.recorder.events(0, 2);
    await h.client.flush();
    const post = h.transport.posts[0];
    expect(post.headers['Content-Encoding']).toBeUndefined();
    expect(JSON.parse(post.raw.toString('utf8')).events).toHaveLength(2);
  });

  it.each([
    ['rejects', () => Promise.reject(new Error('no'))],
    [
      'throws',
      () => {
        throw new Error('no');
      },
    ],
  ])('falls back to plain JSON when compression %s', async (_how, compress) => {
    const h = harness({}, { compress });
    h.recorder.events(0, 2);
    await h.client.flush();
    expect(h.transport.posts[0].headers['Content-Encoding']).toBeUndefined();
    expect(h.transport.storedIds()).toEqual([0, 1]);
  });

  it('sends nothing when nothing was recorded', async () => {
    const h = harness({ flushIntervalMs: 1_000 });
    await h.clock.advance(60_000);
    await h.client.flush();
    expect(h.transport.posts).toHaveLength(0);
  });

  it('splits a large buffer into batches of at most 10000 events, each with its own seq', async () => {
    const h = harness({ maxBufferEvents: 50_000 });
    h.recorder.events(0, 25_000);
    await h.client.flush();
    expect(h.transport.posts.map((p) => p.batch.events.length)).toEqual([10_000, 10_000, 5_000]);
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([0, 1, 2]);
    expect(h.transport.storedIds()).toEqual([...Array(25_000).keys()]);
  });

  it('keeps every request body under maxBatchBytes, in order', async () => {
    const h = harness({}, { compress: null });
    // 120 events of ~30 KB: about 3.6 MB in all.
    h.recorder.events(0, 120, 30_000);
    await h.client.flush();
    expect(h.transport.posts.length).toBeGreaterThanOrEqual(4);
    for (const p of h.transport.posts) expect(p.raw.length).toBeLessThanOrEqual(1_000_000);
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([...h.transport.posts.keys()]);
    expect(h.transport.storedIds()).toEqual([...Array(120).keys()]);
  });

  it('sends an event larger than maxBatchBytes in a batch of its own', async () => {
    const h = harness({ maxBatchBytes: 10_000 });
    h.recorder.one(0, 100);
    h.recorder.one(1, 50_000);
    h.recorder.one(2, 100);
    await h.client.flush();
    expect(h.transport.posts.map((p) => p.batch.events.map((e) => (e.data as { i: number }).i))).toEqual([[0], [1], [2]]);
  });

  it('a full batch waits for the interval too: one request per flushIntervalMs', async () => {
    const h = harness({ flushIntervalMs: 60_000 });
    h.recorder.events(0, 25_000);
    await h.clock.advance(59_999);
    expect(h.transport.posts).toHaveLength(0);
    await h.clock.advance(1);
    expect(h.transport.posts.map((p) => p.batch.events.length)).toEqual([10_000]);
    await h.clock.advance(60_000);
    expect(h.transport.posts.map((p) => p.batch.events.length)).toEqual([10_000, 10_000]);
  });

  it('adds the metadata option to every batch, the URL and SDK version included', async () => {
    let n = 0;
    const h = harness({ metadata: () => ({ userId: 'u-1', n: ++n }) });
    h.recorder.events(0, 1);
    await h.client.flush();
    expect(h.transport.posts[0].batch.metadata).toEqual({
      url: 'https://site.test/page?q=1',
      userId: 'u-1',
      n: 1,
      sdk: 'lucent-js/0.1.0',
    });
  });

  it('strips trailing slashes from the endpoint', async () => {
    const h = harness({ endpoint: 'https://ingest.test//' });
    h.recorder.events(0, 1);
    await h.client.flush();
    expect(h.transport.posts[0].url).toBe(REPLAY_URL);
  });

  it('rejects nonsensical numeric options', () => {
    expect(() => harness({ flushIntervalMs: 0 })).toThrow(/flushIntervalMs/);
    expect(() => harness({ maxBufferEvents: Number.NaN })).toThrow(/maxBufferEvents/);
  });

  it('makes ids the server accepts', () => {
    const h = harness({}, { newId: () => crypto.randomUUID() });
    expect(h.client.sessionId).toMatch(ID_PATTERN);
    expect(h.client.windowId).toMatch(ID_PATTERN);
    expect(h.client.windowId).not.toBe(h.client.sessionId);
  });

  it('stop() sends what is left and then stays quiet', async () => {
    const h = harness({ flushIntervalMs: 1_000 });
    h.recorder.events(0, 3);
    await h.client.stop();
    expect(h.recorder.running).toBe(false);
    expect(h.lifecycle.subscribed).toBe(false);
    expect(h.transport.storedIds()).toEqual([0, 1, 2]);
    h.recorder.events(3, 5);
    await h.clock.advance(10_000);
    expect(h.transport.posts).toHaveLength(1);
    expect(h.clock.pendingTimers()).toBe(0);
    expect(h.client.stats().state).toBe('stopped');
  });
});
