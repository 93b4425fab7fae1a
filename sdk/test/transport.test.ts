import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Client } from '../src/client';
import { memoryStorage, randomId, systemClock } from '../src/env';
import { ID_PATTERN } from '../src/identity';
import { fetchTransport, gzipCompressor } from '../src/transport';
import { API_KEY, FakeLifecycle, FakeRecorder } from './helpers';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A stand-in ingest server on a free loopback port, answering from a script. */
let server: Server;
let base: string;
const received: Received[] = [];
let answer: (r: Received) => { status: number; headers?: Record<string, string> } = () => ({ status: 202 });

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const r = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      received.push(r);
      const a = answer(r);
      res.writeHead(a.status, {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Expose-Headers': 'Retry-After',
        'Content-Type': 'application/json',
        ...a.headers,
      });
      res.end(a.status === 202 ? '{"status":"accepted"}' : '{"error":"x"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

afterEach(() => {
  received.length = 0;
  answer = () => ({ status: 202 });
  vi.unstubAllGlobals();
});

describe('the browser transport against a real HTTP server', () => {
  it('posts with the contract headers and reads Retry-After', async () => {
    answer = () => ({ status: 429, headers: { 'Retry-After': '3' } });
    const gzip = gzipCompressor();
    expect(gzip).not.toBeNull();
    const body = await gzip!('{"hello":"wörld"}');
    const res = await fetchTransport.post(`${base}/api/sdk/replay`, body, {
      'X-Lucent-Api-Key': API_KEY,
      'Content-Type': 'application/json',
      'Content-Encoding': 'gzip',
    });
    expect(res).toEqual({ status: 429, retryAfter: '3' });
    const r = received[0];
    expect(r.method).toBe('POST');
    expect(r.url).toBe('/api/sdk/replay');
    expect(r.headers['x-lucent-api-key']).toBe(API_KEY);
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(r.body).toString('utf8')).toBe('{"hello":"wörld"}');
  });

  it('rejects on a network failure, which the client retries', async () => {
    await expect(fetchTransport.post('http://127.0.0.1:1/api/sdk/replay', 'x', {})).rejects.toThrow();
  });

  it('a client with the real transport, gzip and clock delivers a batch the server can read', async () => {
    const recorder = new FakeRecorder();
    const client = new Client(
      { apiKey: API_KEY, endpoint: `${base}/`, flushIntervalMs: 600_000 },
      {
        transport: fetchTransport,
        clock: systemClock,
        storage: memoryStorage(),
        compress: gzipCompressor(),
        random: Math.random,
        newId: randomId,
        recorder,
        lifecycle: new FakeLifecycle(),
        logger: { warn: () => {} },
        currentUrl: () => 'https://site.test/',
      },
    );
    recorder.events(0, 50, 20, '😀');
    await client.flush();
    await client.stop();
    expect(received).toHaveLength(1);
    const batch = JSON.parse(gunzipSync(received[0].body).toString('utf8'));
    expect(batch).toMatchObject({ sessionId: client.sessionId, windowId: client.windowId, seq: 0 });
    expect(batch.events).toHaveLength(50);
    expect(client.stats()).toMatchObject({ sentBatches: 1, sentEvents: 50, bufferedEvents: 0 });
  });

  it('beacons use sendBeacon with a text/plain Blob and no custom headers', async () => {
    const sendBeacon = vi.fn((_url: string, _data: Blob) => true);
    vi.stubGlobal('navigator', { sendBeacon });
    expect(fetchTransport.beacon(`${base}/api/sdk/replay?api_key=${API_KEY}`, '{"a":1}')).toBe(true);
    const [url, blob] = sendBeacon.mock.calls[0];
    expect(url).toBe(`${base}/api/sdk/replay?api_key=${API_KEY}`);
    expect(blob.type).toBe('text/plain');
    expect(await blob.text()).toBe('{"a":1}');
  });

  it('a refused sendBeacon is reported as refused', () => {
    vi.stubGlobal('navigator', { sendBeacon: () => false });
    expect(fetchTransport.beacon(`${base}/x`, '{}')).toBe(false);
    vi.stubGlobal('navigator', {
      sendBeacon: () => {
        throw new TypeError('too big');
      },
    });
    expect(fetchTransport.beacon(`${base}/x`, '{}')).toBe(false);
  });

  it('without sendBeacon, falls back to a keepalive fetch with the key in the query', async () => {
    vi.stubGlobal('navigator', {});
    expect(fetchTransport.beacon(`${base}/api/sdk/replay?api_key=${API_KEY}`, '{"b":2}')).toBe(true);
    await vi.waitFor(() => expect(received).toHaveLength(1));
    expect(received[0].url).toBe(`/api/sdk/replay?api_key=${API_KEY}`);
    expect(received[0].headers['x-lucent-api-key']).toBeUndefined();
    expect(received[0].body.toString()).toBe('{"b":2}');
  });
});

describe('ids', () => {
  it('are UUIDs the server accepts, with or without crypto.randomUUID', () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    expect(randomId()).toMatch(uuid);
    // Insecure contexts (plain http) have getRandomValues but not randomUUID.
    vi.stubGlobal('crypto', { getRandomValues: (b: Uint8Array) => b.fill(0xab) });
    const id = randomId();
    expect(id).toMatch(uuid);
    expect(id).toMatch(ID_PATTERN);
  });
});
