import { describe, expect, it } from 'vitest';
import { EventQueue, utf8Length } from '../src/queue';
import { accepted, harness, status } from './helpers';

describe('bounded buffer', () => {
  it('drops the oldest events beyond maxBufferEvents, counts them, and warns once', async () => {
    const h = harness({ maxBufferEvents: 100, flushIntervalMs: 600_000 });
    h.transport.reply = () => status(503);
    h.recorder.events(0, 50);
    await h.client.flush(); // 0..49 committed to a batch; the server keeps failing
    h.recorder.events(50, 300);

    expect(h.client.stats()).toMatchObject({ bufferedEvents: 100, droppedEvents: 200 });
    expect(h.warnings).toHaveLength(1);
    expect(h.warnings[0]).toMatch(/dropping the oldest/);

    // The server recovers: the committed batch, then (an interval later) the newest 50 events.
    h.transport.reply = () => accepted();
    await h.clock.advance(60_000);
    await h.clock.advance(600_000);
    expect(h.transport.storedIds()).toEqual([...Array(50).keys(), ...Array.from({ length: 50 }, (_, i) => 250 + i)]);
    // The batch that follows the gap says how much was lost, and a fresh snapshot was asked for.
    const last = h.transport.posts[h.transport.posts.length - 1].batch;
    expect(last.metadata.droppedEvents).toBe(200);
    expect(h.recorder.fullSnapshots).toBe(1);
  });

  it('never holds more than maxBufferEvents while nothing can be sent', async () => {
    const h = harness({ maxBufferEvents: 1_000, flushIntervalMs: 1_000 });
    h.transport.reply = (_p, i) => (i % 2 ? status(429, '2') : 'network-error');
    for (let round = 0; round < 30; round++) {
      h.recorder.events(round * 500, (round + 1) * 500);
      await h.clock.advance(1_000);
      expect(h.client.stats().bufferedEvents).toBeLessThanOrEqual(1_000);
    }
    expect(h.client.stats().droppedEvents).toBe(15_000 - h.client.stats().bufferedEvents);
  });

  it('limits a batch to the buffer size when the buffer is small', async () => {
    const h = harness({ maxBufferEvents: 10, flushIntervalMs: 600_000 });
    h.recorder.events(0, 10);
    await h.client.flush();
    expect(h.transport.posts.map((p) => p.batch.events.length)).toEqual([10]);
  });
});

describe('EventQueue and utf8Length', () => {
  it('counts bytes as UTF-8 does', () => {
    for (const s of ['', 'abc', 'é', '中文', '😀', 'a😀b', '\ud800', '\udc00x', 'x\ud800', JSON.stringify({ s: '\ud800' })]) {
      expect(utf8Length(s)).toBe(new TextEncoder().encode(s).length);
    }
  });

  it('discards from the front and keeps the byte count', () => {
    const q = new EventQueue();
    for (let i = 0; i < 5_000; i++) q.push({ json: String(i), bytes: String(i).length, type: 3, sid: 's' });
    q.discard(3_000);
    expect(q.length).toBe(2_000);
    expect(q.at(0).json).toBe('3000');
    expect(q.bytes).toBe(2_000 * 4);
    q.discard(10_000);
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
  });
});
