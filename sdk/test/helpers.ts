/** Fakes for the client's seams: a manual clock, a scripted transport, a recorder we drive. */
import { gunzipSync } from 'node:zlib';
import { Client } from '../src/client';
import type { ClientOptions } from '../src/options';
import type { Clock, Deps, KeyValueStorage, Lifecycle, PostInit, RecordedEvent, Recorder, TransportResponse, Transport } from '../src/types';

export const API_KEY = 'luc_pk_0123456789abcdef0123456789abcdef';
export const ENDPOINT = 'https://ingest.test';
export const REPLAY_URL = `${ENDPOINT}/api/sdk/replay`;

/** Let pending promise chains run (the fake transport and compressor resolve on microtasks/immediates). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A clock that only moves when told; timers fire in time order as it moves. */
export class FakeClock implements Clock {
  t = 1_700_000_000_000;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Move time forward by `ms`, firing due timers in order and letting promises settle in between. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= end && (!due || entry[1].at < due[1].at)) due = entry;
      }
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = end;
    await settle();
  }
  /** Move time without firing timers (a timer that is late, as real ones can be). */
  jump(ms: number): void {
    this.t += ms;
  }
  pendingTimers(): number {
    return this.timers.size;
  }
}

export interface SentBatch {
  sessionId: string;
  windowId: string;
  seq: number;
  events: RecordedEvent[];
  metadata: Record<string, unknown>;
}

export interface PostRecord {
  url: string;
  headers: Record<string, string>;
  /** The bytes as sent (gzip or UTF-8 JSON). */
  raw: Buffer;
  batch: SentBatch;
  status: number | 'network-error' | 'pending';
  /** Sent with `keepalive: true`. */
  keepalive: boolean;
  /** The request's abort signal (aborted on the client's timeout). */
  signal?: AbortSignal;
  /** Time of the request (the fake clock). */
  at?: number;
}

export interface BeaconRecord {
  url: string;
  bytes: number;
  gzip: boolean;
  batch: SentBatch;
}

type Reply = TransportResponse | 'network-error' | Promise<TransportResponse>;

/** Records every request; answers posts with `reply` (202 by default); beacons within `beaconQuota` bytes. */
export class FakeTransport implements Transport {
  posts: PostRecord[] = [];
  beacons: BeaconRecord[] = [];
  reply: (post: PostRecord, index: number) => Reply = () => accepted();
  /** Total beacon bytes the "browser" accepts (the keepalive quota); Infinity = no limit. */
  beaconQuota = Infinity;
  private beaconBytesUsed = 0;

  /** Set by the harness: stamps each request with the fake time. */
  clock?: { now(): number };

  async post(url: string, body: Uint8Array | string, headers: Record<string, string>, init?: PostInit): Promise<TransportResponse> {
    const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
    const text = headers['Content-Encoding'] === 'gzip' ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
    const record: PostRecord = {
      url,
      headers: { ...headers },
      raw,
      batch: JSON.parse(text),
      status: 'pending',
      keepalive: init?.keepalive === true,
      signal: init?.signal,
      at: this.clock?.now(),
    };
    this.posts.push(record);
    const r = await this.reply(record, this.posts.length - 1);
    if (r === 'network-error') {
      record.status = 'network-error';
      throw new TypeError('Failed to fetch');
    }
    record.status = r.status;
    return r;
  }

  beacon(url: string, body: string | Uint8Array): boolean {
    const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
    const gzip = raw[0] === 0x1f && raw[1] === 0x8b;
    const bytes = raw.length;
    if (this.beaconBytesUsed + bytes > this.beaconQuota) return false;
    this.beaconBytesUsed += bytes;
    this.beacons.push({ url, bytes, gzip, batch: JSON.parse((gzip ? gunzipSync(raw) : raw).toString('utf8')) });
    return true;
  }

  /** Batches the server would have stored: accepted posts and beacons, keyed by seq (idempotent, last write wins). */
  stored(): Map<number, SentBatch> {
    const m = new Map<number, SentBatch>();
    for (const p of this.posts) if (typeof p.status === 'number' && p.status >= 200 && p.status < 300) m.set(p.batch.seq, p.batch);
    for (const b of this.beacons) m.set(b.batch.seq, b.batch);
    return m;
  }

  /** The `data.i` of every stored event, in seq order. */
  storedIds(): number[] {
    return [...this.stored().entries()]
      .sort((a, b) => a[0] - b[0])
      .flatMap(([, b]) => b.events.map((e) => (e.data as { i: number }).i));
  }
}

export function accepted(): TransportResponse {
  return { status: 202, retryAfter: null };
}
export function status(code: number, retryAfter: string | null = null): TransportResponse {
  return { status: code, retryAfter };
}

export class FakeRecorder implements Recorder {
  emit: ((e: RecordedEvent) => void) | null = null;
  running = false;
  fullSnapshots = 0;
  start(emit: (e: RecordedEvent) => void): () => void {
    this.emit = emit;
    this.running = true;
    return () => {
      this.running = false;
    };
  }
  takeFullSnapshot(): void {
    this.fullSnapshots++;
  }
  /** Record events with ids `from..to-1` (data.i), `pad` extra characters each. */
  events(from: number, to: number, pad = 0, padChar = 'x'): void {
    for (let i = from; i < to; i++) this.one(i, pad, padChar);
  }
  one(i: number, pad = 0, padChar = 'x'): void {
    if (!this.running || !this.emit) return;
    this.emit(makeEvent(i, pad, padChar));
  }
  /** A full snapshot (type 2) with id `i` and `pad` characters of DOM. */
  snapshot(i: number, pad = 0, padChar = 'x'): void {
    if (!this.running || !this.emit) return;
    this.emit({ type: 2, timestamp: 1_700_000_000_000 + i, data: { node: { id: 1 }, i, pad: padChar.repeat(pad) } });
  }
  /** A user's mouse click (incremental source 2): counts as activity for the idle timeout. */
  click(i: number): void {
    if (!this.running || !this.emit) return;
    this.emit({ type: 3, timestamp: 1_700_000_000_000 + i, data: { source: 2, i } });
  }
}

/** A string that gzip cannot shrink much (deterministic). */
export function noise(n: number, seed = 1): string {
  let x = seed;
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < n; i++) {
    x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
    s += abc[x % 62];
  }
  return s;
}

export function makeEvent(i: number, pad = 0, padChar = 'x'): RecordedEvent {
  return { type: 3, timestamp: 1_700_000_000_000 + i, data: { source: 0, i, pad: padChar.repeat(pad) } };
}

export class FakeLifecycle implements Lifecycle {
  private handlers: Parameters<Lifecycle['subscribe']>[0] | null = null;
  subscribe(handlers: Parameters<Lifecycle['subscribe']>[0]): () => void {
    this.handlers = handlers;
    return () => {
      this.handlers = null;
    };
  }
  hide(reason: 'pagehide' | 'hidden' = 'pagehide'): void {
    this.handlers?.onHide(reason);
  }
  restore(): void {
    this.handlers?.onRestore();
  }
  get subscribed(): boolean {
    return this.handlers !== null;
  }
}

/** gzip through zlib, resolved on a microtask: deterministic under the fake clock. */
export const testGzip = async (text: string): Promise<Uint8Array> => {
  const { gzipSync } = await import('node:zlib');
  return new Uint8Array(gzipSync(Buffer.from(text, 'utf8')));
};

export interface Harness {
  client: Client;
  clock: FakeClock;
  transport: FakeTransport;
  recorder: FakeRecorder;
  lifecycle: FakeLifecycle;
  storage: KeyValueStorage;
  warnings: string[];
  deps: Deps;
}

let idCounter = 0;

/** A client wired to fakes. Pass `storage` (and a clock) to simulate a reload of the same tab. */
export function harness(
  options: Partial<ClientOptions> = {},
  overrides: Partial<Deps> & { clock?: FakeClock; transport?: FakeTransport } = {},
): Harness {
  const clock = overrides.clock ?? new FakeClock();
  const transport = overrides.transport ?? new FakeTransport();
  const recorder = new FakeRecorder();
  const lifecycle = new FakeLifecycle();
  const storage = overrides.storage ?? new MapStorage();
  const warnings: string[] = [];
  const deps: Deps = {
    transport,
    clock,
    storage,
    compress: testGzip,
    random: () => 0.5,
    newId: () => `id-${++idCounter}`,
    recorder,
    lifecycle,
    logger: { warn: (m) => warnings.push(m) },
    currentUrl: () => 'https://site.test/page?q=1',
    ...overrides,
  };
  deps.clock = clock;
  deps.transport = transport;
  transport.clock ??= clock;
  const client = new Client({ apiKey: API_KEY, endpoint: ENDPOINT, ...options }, deps);
  return { client, clock, transport, recorder, lifecycle, storage, warnings, deps };
}

/** An in-memory sessionStorage that can be cloned (what a browser does when it duplicates a tab). */
export class MapStorage implements KeyValueStorage {
  readonly map = new Map<string, string>();
  getItem(k: string): string | null {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.map.set(k, v);
  }
  removeItem(k: string): void {
    this.map.delete(k);
  }
  clone(): MapStorage {
    const c = new MapStorage();
    for (const [k, v] of this.map) c.map.set(k, v);
    return c;
  }
}
