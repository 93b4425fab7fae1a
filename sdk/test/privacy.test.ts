// Issue 15: privacy and consent (sampling, minimum duration, opt-out, consent) and the rrweb privacy options.
import { describe, expect, it } from 'vitest';
import { OPT_OUT_KEY } from '../src/client';
import { MEDIA_SELECTOR, privacyRecordOptions } from '../src/init';
import { MapStorage, harness } from './helpers';

describe('sampleRate', () => {
  it('a tab left out records and sends nothing, and stays out across reloads', async () => {
    const storage = new MapStorage();
    const h = harness({ sampleRate: 0.5, flushIntervalMs: 1_000 }, { storage, random: () => 0.7 });
    expect(h.client.stats().state).toBe('sampled-out');
    expect(h.recorder.running).toBe(false);
    h.lifecycle.hide('pagehide');
    await h.clock.advance(10_000);
    expect(h.transport.posts).toHaveLength(0);
    const again = harness({ sampleRate: 0.5 }, { storage, random: () => 0.1 });
    expect(again.client.stats().state).toBe('sampled-out');
  });

  it('a tab sampled in records', () => {
    const h = harness({ sampleRate: 0.5 }, { random: () => 0.3 });
    expect(h.client.stats().state).toBe('recording');
    expect(h.recorder.running).toBe(true);
  });

  it('rejects a rate outside 0..1', () => {
    expect(() => harness({ sampleRate: 2 })).toThrow(/sampleRate/);
    expect(() => harness({ sampleRate: -1 })).toThrow(/sampleRate/);
  });
});

describe('minimumDurationMs', () => {
  it('sends nothing, not even by beacon, until the session has lasted that long', async () => {
    const h = harness({ minimumDurationMs: 5_000, flushIntervalMs: 1_000 });
    h.recorder.snapshot(0, 10);
    h.recorder.events(1, 3);
    await h.clock.advance(4_999);
    h.lifecycle.hide('hidden');
    h.lifecycle.hide('pagehide');
    await h.clock.advance(0);
    expect(h.transport.posts).toHaveLength(0);
    expect(h.transport.beacons).toHaveLength(0);
    await h.clock.advance(1);
    expect(h.transport.storedIds()).toEqual([0, 1, 2]);
  });
});

describe('opt-out and consent', () => {
  it('optOut() stops recording, drops the buffer, and persists across pages until optIn()', async () => {
    const persistentStorage = new MapStorage();
    const h = harness({ flushIntervalMs: 1_000 }, { persistentStorage });
    h.recorder.events(0, 3);
    h.client.optOut();
    expect(persistentStorage.getItem(OPT_OUT_KEY)).toBe('1');
    expect(h.recorder.running).toBe(false);
    expect(h.client.stats()).toMatchObject({ state: 'opted-out', bufferedEvents: 0 });
    h.lifecycle.hide('pagehide');
    await h.clock.advance(10_000);
    expect(h.transport.posts).toHaveLength(0);
    expect(h.transport.beacons).toHaveLength(0);

    const next = harness({}, { persistentStorage });
    expect(next.client.stats().state).toBe('opted-out');
    expect(next.recorder.running).toBe(false);
    next.client.optIn();
    expect(persistentStorage.getItem(OPT_OUT_KEY)).toBeNull();
    expect(next.recorder.running).toBe(true);
    next.recorder.events(0, 1);
    await next.client.flush();
    expect(next.transport.posts).toHaveLength(1);
  });

  it('optIn() does not bypass a missing consent, and a tab sampled out stays out', () => {
    const persistentStorage = new MapStorage();
    persistentStorage.setItem(OPT_OUT_KEY, '1');
    const h = harness({ requireConsent: true }, { persistentStorage });
    h.client.optIn();
    expect(h.client.stats().state).toBe('awaiting-consent');
    expect(h.recorder.running).toBe(false);
    h.client.grantConsent();
    expect(h.recorder.running).toBe(true);

    const out = harness({ sampleRate: 0 }, { persistentStorage: new MapStorage() });
    out.client.optOut();
    out.client.optIn();
    expect(out.client.stats().state).toBe('sampled-out');
    expect(out.recorder.running).toBe(false);
  });

  it('grantConsent() never throws into the page, even if rrweb fails to start', () => {
    const h = harness({ requireConsent: true });
    h.recorder.start = () => {
      throw new Error('rrweb broke');
    };
    expect(() => h.client.grantConsent()).not.toThrow();
    expect(h.warnings.join()).toMatch(/failed to start/);
  });

  it('requireConsent records nothing until grantConsent()', async () => {
    const h = harness({ requireConsent: true, flushIntervalMs: 1_000 });
    expect(h.client.stats().state).toBe('awaiting-consent');
    expect(h.recorder.running).toBe(false);
    h.lifecycle.hide('pagehide');
    await h.clock.advance(10_000);
    expect(h.transport.posts).toHaveLength(0);
    h.client.grantConsent();
    expect(h.recorder.running).toBe(true);
    h.recorder.events(0, 1);
    await h.clock.advance(1_000);
    expect(h.transport.storedIds()).toEqual([0]);
  });
});

describe('rrweb privacy options', () => {
  it('masks all inputs by default, and nothing else', () => {
    expect(privacyRecordOptions({})).toEqual({ maskAllInputs: true });
  });

  it('maskAllText masks every text node; blockMedia blocks media on top of a blockSelector', () => {
    const o = privacyRecordOptions({ maskAllText: true, blockMedia: true, blockSelector: '.ad', maskAllInputs: false });
    expect(o).toMatchObject({ maskAllInputs: false, maskTextSelector: '*', blockSelector: `.ad,${MEDIA_SELECTOR}` });
    expect(MEDIA_SELECTOR.split(',')).toEqual(expect.arrayContaining(['img', 'video', 'audio', 'svg', 'canvas', 'picture']));
  });

  it('passes class and selector options through, winning over recordOptions', () => {
    const o = privacyRecordOptions(
      { blockClass: 'no-rec', ignoreClass: 'no-input', ignoreSelector: '#card', maskTextClass: /^pii-/, maskTextSelector: '.name' },
      { maskAllInputs: false, blockSelector: '.from-record-options' },
    );
    expect(o).toEqual({
      maskAllInputs: false,
      blockSelector: '.from-record-options',
      blockClass: 'no-rec',
      ignoreClass: 'no-input',
      ignoreSelector: '#card',
      maskTextClass: /^pii-/,
      maskTextSelector: '.name',
    });
  });
});
