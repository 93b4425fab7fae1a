import { describe, expect, it } from 'vitest';
import { FakeClock, FakeTransport, MapStorage, harness } from './helpers';

describe('session, window and seq', () => {
  it('a reload of the tab keeps the session and window and continues the seq', async () => {
    const storage = new MapStorage();
    const transport = new FakeTransport();
    const clock = new FakeClock();

    const first = harness({}, { storage, transport, clock });
    first.recorder.events(0, 2);
    await first.client.flush();
    first.recorder.events(2, 4);
    await first.client.flush();
    // The page unloads: pagehide (nothing left to beacon), then the tab loads the page again.
    first.lifecycle.hide('pagehide');

    const second = harness({}, { storage, transport, clock });
    expect(second.client.sessionId).toBe(first.client.sessionId);
    expect(second.client.windowId).toBe(first.client.windowId);
    second.recorder.events(4, 6);
    await second.client.flush();

    expect(transport.posts.map((p) => [p.batch.sessionId, p.batch.windowId, p.batch.seq])).toEqual([
      [first.client.sessionId, first.client.windowId, 0],
      [first.client.sessionId, first.client.windowId, 1],
      [first.client.sessionId, first.client.windowId, 2],
    ]);
  });

  it('the seq survives a reload even when the last batch went by beacon', async () => {
    const storage = new MapStorage();
    const transport = new FakeTransport();
    const first = harness({}, { storage, transport });
    first.recorder.events(0, 3);
    await first.client.flush();
    first.recorder.events(3, 5);
    first.lifecycle.hide('pagehide');

    const second = harness({}, { storage, transport });
    second.recorder.events(5, 6);
    await second.client.flush();
    expect(transport.posts.map((p) => p.batch.seq)).toEqual([0, 2]);
    expect(transport.beacons.map((b) => b.batch.seq)).toEqual([1]);
    expect(transport.storedIds()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('a duplicated tab keeps the session but takes its own window, starting at seq 0', async () => {
    const storage = new MapStorage();
    const transport = new FakeTransport();
    const original = harness({}, { storage, transport });
    original.recorder.events(0, 2);
    await original.client.flush();

    // The browser copies sessionStorage into the duplicate while the original is alive.
    const duplicate = harness({}, { storage: storage.clone(), transport });
    expect(duplicate.client.sessionId).toBe(original.client.sessionId);
    expect(duplicate.client.windowId).not.toBe(original.client.windowId);
    duplicate.recorder.events(100, 101);
    await duplicate.client.flush();
    original.recorder.events(2, 3);
    await original.client.flush();

    const keys = transport.posts.map((p) => `${p.batch.windowId}#${p.batch.seq}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(transport.posts.map((p) => p.batch.seq)).toEqual([0, 0, 1]);
  });

  it('a page that died without pagehide is followed by a new window, never a reused seq', async () => {
    const storage = new MapStorage();
    const transport = new FakeTransport();
    const crashed = harness({}, { storage, transport });
    crashed.recorder.events(0, 1);
    await crashed.client.flush();

    const next = harness({}, { storage, transport });
    expect(next.client.sessionId).toBe(crashed.client.sessionId);
    expect(next.client.windowId).not.toBe(crashed.client.windowId);
  });

  it('a new tab (empty sessionStorage) starts a new session', () => {
    const a = harness();
    const b = harness();
    expect(b.client.sessionId).not.toBe(a.client.sessionId);
  });

  it('a stored session id the server would refuse is replaced', () => {
    const storage = new MapStorage();
    storage.setItem('lucent.sid', 'not valid!');
    const h = harness({}, { storage });
    expect(h.client.sessionId).toMatch(/^id-\d+$/);
  });

  it('a page restored from the back/forward cache continues after the seqs its successor used', async () => {
    const storage = new MapStorage();
    const transport = new FakeTransport();
    const a = harness({}, { storage, transport });
    a.recorder.events(0, 1);
    await a.client.flush(); // seq 0
    a.lifecycle.hide('pagehide'); // into the bfcache, frozen

    const b = harness({}, { storage, transport }); // the next page in the same tab
    expect(b.client.windowId).toBe(a.client.windowId);
    b.recorder.events(1, 2);
    await b.client.flush(); // seq 1
    b.lifecycle.hide('pagehide');

    a.lifecycle.restore(); // back button
    expect(a.recorder.fullSnapshots).toBe(1);
    a.recorder.events(2, 3);
    await a.client.flush();
    expect(transport.posts.map((p) => p.batch.seq)).toEqual([0, 1, 2]);
  });

  it('keeps counting in memory when storage writes fail', async () => {
    const storage = new MapStorage();
    storage.setItem = () => {
      throw new DOMException('quota', 'QuotaExceededError');
    };
    const h = harness({}, { storage });
    h.recorder.events(0, 1);
    await h.client.flush();
    h.recorder.events(1, 2);
    await h.client.flush();
    expect(h.transport.posts.map((p) => p.batch.seq)).toEqual([0, 1]);
  });
});
