// @vitest-environment jsdom
//
// The real wiring: rrweb recording a (jsdom) page, `init`'s defaults, fetch and
// sendBeacon stubbed at the global level. The browser end-to-end test against
// the real server comes later; this catches wiring mistakes early.
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { init } from '../src/index';
import { API_KEY } from './helpers';

interface Call {
  url: string;
  init: RequestInit;
}

function stubNetwork() {
  const calls: Call[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string, init: RequestInit) => {
      calls.push({ url, init });
      return new Response('{"status":"accepted"}', { status: 202 });
    }),
  );
  const beacons: { url: string; data: Blob }[] = [];
  Object.defineProperty(window.navigator, 'sendBeacon', {
    configurable: true,
    value: (url: string, data: Blob) => {
      beacons.push({ url, data });
      return true;
    },
  });
  return { calls, beacons };
}

function decode(body: unknown): { sessionId: string; seq: number; events: { type: number }[] } {
  const bytes = body instanceof Uint8Array ? Buffer.from(body) : Buffer.from(String(body));
  const text = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes).toString('utf8') : bytes.toString('utf8');
  return JSON.parse(text);
}

/** jsdom's Blob has no text(); FileReader it is. */
function readBlob(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error);
    r.readAsText(blob);
  });
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('init in a page', () => {
  it('records with rrweb and sends gzip batches, then beacons on pagehide', async () => {
    const { calls, beacons } = stubNetwork();
    document.body.innerHTML = '<input id="name"><button id="go">Go</button><ul id="out"></ul>';
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});

    const lucent = init({ apiKey: API_KEY, endpoint: 'http://127.0.0.1:9/', flushIntervalMs: 600_000 });
    expect(lucent.sessionId).toBe(sessionStorage.getItem('lucent.sid'));
    expect(init({ apiKey: API_KEY, endpoint: 'http://x' })).toBe(lucent);

    const li = document.createElement('li');
    li.textContent = 'hello';
    document.getElementById('out')!.appendChild(li);
    await new Promise((r) => setTimeout(r, 20)); // let the MutationObserver report

    await lucent.flush();
    expect(calls).toHaveLength(1);
    expect(calls[0].url).toBe('http://127.0.0.1:9/api/sdk/replay');
    expect(calls[0].init.method).toBe('POST');
    const headers = calls[0].init.headers as Record<string, string>;
    expect(headers['X-Lucent-Api-Key']).toBe(API_KEY);
    const batch = decode(calls[0].init.body);
    expect(batch.sessionId).toBe(lucent.sessionId);
    expect(batch.seq).toBe(0);
    const types = batch.events.map((e) => e.type);
    expect(types).toContain(4); // Meta
    expect(types).toContain(2); // FullSnapshot
    expect(types).toContain(3); // the mutation

    li.textContent = 'bye';
    await new Promise((r) => setTimeout(r, 20));
    window.dispatchEvent(new Event('pagehide'));
    expect(beacons).toHaveLength(1);
    expect(beacons[0].url).toBe(`http://127.0.0.1:9/api/sdk/replay?api_key=${API_KEY}`);
    expect(beacons[0].data.type).toBe('text/plain');
    expect(decode(await readBlob(beacons[0].data)).seq).toBe(1);

    await lucent.stop();
    expect(lucent.stats().state).toBe('stopped');
    // The only warning: the second init.
    expect(warn.mock.calls).toEqual([['[lucent] init called twice; returning the running instance']]);
  });

  it('never throws into the page on bad options', () => {
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    // @ts-expect-error: deliberately wrong
    const h = init({ endpoint: 'http://x' });
    expect(h.stats().state).toBe('stopped');
    expect(() => init({ apiKey: API_KEY, endpoint: 'http://x', flushIntervalMs: -1 })).not.toThrow();
    expect(error).toHaveBeenCalledTimes(2);
  });
});
