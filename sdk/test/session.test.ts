// Issue 15: session lifecycle (idle timeout, maximum length, periodic full snapshot) and frames (defect 7).
import { describe, expect, it } from 'vitest';
import { FakeClock, FakeTransport, MapStorage, harness } from './helpers';

const MIN = 60_000;

describe('session lifecycle', () => {
  it('after idleTimeoutMs without user activity, the next activity starts a new session with a new full snapshot', async () => {
    const h = harness({ flushIntervalMs: 10_000, idleTimeoutMs: 30 * MIN, fullSnapshotEveryMs: 0 });
    const first = h.client.sessionId;
    h.recorder.click(0);
    h.recorder.one(1); // a mutation: not user activity
    await h.clock.advance(31 * MIN);
    h.recorder.one(2); // the page still changes: same session
    expect(h.client.sessionId).toBe(first);
    h.recorder.click(3);
    expect(h.client.sessionId).not.toBe(first);
    await h.clock.advance(0);
    expect(h.recorder.fullSnapshots).toBe(1);
    await h.clock.advance(20_000); // two intervals: one batch per session
    const bySession = h.transport.posts.map((p) => [p.batch.sessionId, p.batch.seq, p.batch.events.map((e) => (e.data as { i: number }).i)]);
    expect(bySession).toEqual([
      [first, 0, [0, 1]],
      [first, 1, [2]],
      [h.client.sessionId, 0, [3]],
    ]);
  });

  it('activity keeps the session alive past the idle timeout', async () => {
    const h = harness({ idleTimeoutMs: 30 * MIN, flushIntervalMs: 10 * MIN });
    const first = h.client.sessionId;
    for (let i = 0; i < 10; i++) {
      h.recorder.click(i);
      await h.clock.advance(20 * MIN);
    }
    expect(h.client.sessionId).toBe(first);
  });

  it('a session never lasts longer than maxSessionMs', async () => {
    const h = harness({ maxSessionMs: 60 * MIN, flushIntervalMs: 10 * MIN, fullSnapshotEveryMs: 0 });
    const first = h.client.sessionId;
    for (let i = 0; i < 7; i++) {
      h.recorder.click(i);
      await h.clock.advance(10 * MIN);
    }
    h.recorder.click(7);
    expect(h.client.sessionId).not.toBe(first);
    await h.clock.advance(0);
    expect(h.recorder.fullSnapshots).toBe(1);
  });

  it('a reload after the idle timeout starts a new session; a reload before it continues the session', async () => {
    const storage = new MapStorage();
    const clock = new FakeClock();
    const transport = new FakeTransport();
    const a = harness({ idleTimeoutMs: 30 * MIN }, { storage, clock, transport });
    a.lifecycle.hide('pagehide');
    await clock.advance(10 * MIN);
    const b = harness({ idleTimeoutMs: 30 * MIN }, { storage, clock, transport });
    expect(b.client.sessionId).toBe(a.client.sessionId);
    b.lifecycle.hide('pagehide');
    await clock.advance(31 * MIN);
    const c = harness({ idleTimeoutMs: 30 * MIN }, { storage, clock, transport });
    expect(c.client.sessionId).not.toBe(a.client.sessionId);
    expect(c.client.windowId).toBe(a.client.windowId);
  });

  it('takes a full snapshot every fullSnapshotEveryMs while the page changes, and none on a page where nothing happens', async () => {
    const h = harness({ fullSnapshotEveryMs: 5 * MIN, flushIntervalMs: 10_000 });
    for (let i = 0; i < 66; i++) {
      h.recorder.one(i);
      await h.clock.advance(10_000); // 11 minutes
    }
    expect(h.recorder.fullSnapshots).toBe(2); // at 5 and 10 minutes
    await h.clock.advance(60 * MIN);
    expect(h.recorder.fullSnapshots).toBe(3); // the events after the last one
    await h.clock.advance(60 * MIN);
    expect(h.recorder.fullSnapshots).toBe(3);
  });
});

describe('a same-origin frame running the SDK', () => {
  it('joins the session with a window id of its own and leaves the tab’s window id alone', async () => {
    const storage = new MapStorage();
    const transport = new FakeTransport();
    const clock = new FakeClock();
    const parent = harness({}, { storage, transport, clock });
    const frame = harness({}, { storage, transport, clock, topFrame: false });
    expect(frame.client.sessionId).toBe(parent.client.sessionId);
    expect(frame.client.windowId).not.toBe(parent.client.windowId);
    expect(storage.getItem('lucent.wid')).toBe(parent.client.windowId);
    frame.lifecycle.hide('pagehide'); // the frame goes: the parent is still alive
    expect(storage.getItem('lucent.live')).toBe('1');

    // A reload of the parent keeps the parent's window and continues its seq.
    parent.recorder.events(0, 1);
    await parent.client.flush();
    parent.lifecycle.hide('pagehide');
    const reloaded = harness({}, { storage, transport, clock });
    expect(reloaded.client.windowId).toBe(parent.client.windowId);
    reloaded.recorder.events(1, 2);
    await reloaded.client.flush();
    expect(transport.posts.map((p) => [p.batch.windowId, p.batch.seq])).toEqual([
      [parent.client.windowId, 0],
      [parent.client.windowId, 1],
    ]);
  });
});
