import { Identity } from './identity';
import { EventQueue, utf8Length } from './queue';
import type { Deps, RecordedEvent } from './types';

export const SDK_VERSION = '0.1.0';

/** Options a site passes to `Lucent.init`. Defaults are in `DEFAULTS` (and the README). */
export interface ClientOptions {
  /** A public ingest key, `luc_pk_` + 32 hex characters. */
  apiKey: string;
  /** Base URL of the ingest service, e.g. `https://ingest.example.com`. */
  endpoint: string;
  /** Time between regular sends of the buffer, in milliseconds. */
  flushIntervalMs?: number;
  /** Most events held in memory (waiting, or being retried); beyond it the oldest are dropped. */
  maxBufferEvents?: number;
  /** Most events in one request (the server accepts 1..=10000). */
  maxBatchEvents?: number;
  /** Most bytes of (uncompressed) JSON in one request; under the server's 1 MiB limit even without gzip. */
  maxBatchBytes?: number;
  /** Most bytes in one beacon body (browsers allow 64 KiB of keepalive data in flight). */
  maxBeaconBytes?: number;
  /** First retry delay bound after a 5xx or network error, in milliseconds (doubles per failure). */
  retryBaseMs?: number;
  /** Cap on the retry delay bound, in milliseconds. */
  retryMaxMs?: number;
  /** Extra `metadata` sent with every batch (a function is called for each batch). */
  metadata?: Record<string, unknown> | (() => Record<string, unknown>);
}

export const DEFAULTS = {
  flushIntervalMs: 10_000,
  // 50k events of a few hundred bytes each is some tens of MB at worst: enough to
  // ride out a few minutes of outage or rate limiting on a busy page, and a bound.
  maxBufferEvents: 50_000,
  maxBatchEvents: 10_000,
  // 1 MiB (1_048_576) is the server's default body limit; uncompressed JSON under
  // it always fits, whether or not gzip is available.
  maxBatchBytes: 1_000_000,
  // The keepalive quota is 65_536 bytes; leave room for rounding in browsers' accounting.
  maxBeaconBytes: 64_000,
  retryBaseMs: 1_000,
  retryMaxMs: 60_000,
} as const;

type ResolvedOptions = Required<Omit<ClientOptions, 'metadata'>> & Pick<ClientOptions, 'metadata'>;

/** A Retry-After beyond this is treated as this: a bad proxy must not mute a page for hours. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

export interface LucentStats {
  /** Events waiting to be sent, including a batch being retried. */
  bufferedEvents: number;
  /** Events dropped because the buffer was full. */
  droppedEvents: number;
  /** Events in batches the server refused as malformed (400/413/415) and that were dropped. */
  rejectedEvents: number;
  /** Batches accepted by the server (202) or handed to `sendBeacon`. */
  sentBatches: number;
  /** Events in those batches. */
  sentEvents: number;
  /** 'recording'; 'stopped' after `stop()`; 'disabled' after a 401. */
  state: 'recording' | 'stopped' | 'disabled';
}

export interface LucentHandle {
  readonly sessionId: string;
  readonly windowId: string;
  /** Send everything buffered now (unless the server asked to wait). Resolves when done. */
  flush(): Promise<void>;
  /** Stop recording, make one last attempt to send the buffer, and release timers and listeners. */
  stop(): Promise<void>;
  stats(): LucentStats;
}

/** A batch whose seq and body are fixed: every retry sends exactly these bytes. */
interface Batch {
  seq: number;
  body: string;
  bytes: number;
  count: number;
  gzipped?: Promise<Uint8Array | null>;
}

type Outcome =
  | { kind: 'accepted' }
  | { kind: 'rejected'; status: number }
  | { kind: 'unauthorized' }
  | { kind: 'retry'; delayMs: number };

/**
 * The recorder's buffer and the sending state machine.
 *
 * Events are serialized as they arrive into `queue`. A send takes the oldest
 * events into a `Batch` with the next seq (persisted at once) and keeps it in
 * `current` until the server answers for it: 202 clears it; 429, 5xx and
 * network errors keep it and retry the same bytes later (the server stores
 * `(session, window, seq)` idempotently, so a retry can never duplicate);
 * 400/413/415 drop it; 401 shuts the client down. One request at a time, in
 * seq order.
 */
export class Client implements LucentHandle {
  readonly sessionId: string;
  readonly windowId: string;

  private readonly opts: ResolvedOptions;
  private readonly url: string;
  private readonly beaconUrl: string;
  private readonly identity: Identity;
  private readonly queue = new EventQueue();

  private state: LucentStats['state'] = 'recording';
  private current: Batch | null = null;
  private inFlight = false;
  private draining: Promise<void> | null = null;
  /** Consecutive retryable failures of `current`: the backoff exponent. */
  private attempt = 0;
  /** No request (fetch or beacon) before this time: set by 429 and by backoff. */
  private blockedUntil = 0;

  private tickTimer: unknown = null;
  private soonTimer: unknown = null;
  private retryTimer: unknown = null;
  private stopRecording: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;

  private dropped = 0;
  private rejected = 0;
  private sentBatches = 0;
  private sentEvents = 0;
  /** Events were dropped: the replay needs a fresh full snapshot once sending works again. */
  private needsSnapshot = false;
  private readonly warned = new Set<string>();

  constructor(options: ClientOptions, private readonly deps: Deps) {
    const o: ResolvedOptions = { ...DEFAULTS, ...stripUndefined(options) };
    for (const k of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      if (!(Number.isFinite(o[k]) && o[k] > 0)) throw new TypeError(`Lucent: option ${k} must be a positive number`);
    }
    // A batch never holds more than the buffer may.
    o.maxBatchEvents = Math.min(o.maxBatchEvents, DEFAULTS.maxBatchEvents, o.maxBufferEvents);
    this.opts = o;
    const base = options.endpoint.replace(/\/+$/, '');
    this.url = `${base}/api/sdk/replay`;
    this.beaconUrl = `${this.url}?api_key=${encodeURIComponent(options.apiKey)}`;

    this.identity = new Identity(deps.storage, deps.newId);
    this.sessionId = this.identity.sessionId;
    this.windowId = this.identity.windowId;

    this.unsubscribe = deps.lifecycle.subscribe({
      onHide: (reason) => this.onHide(reason),
      onRestore: () => this.onRestore(),
    });
    this.scheduleTick();
    try {
      this.stopRecording = deps.recorder.start((event) => this.record(event));
    } catch (e) {
      this.state = 'stopped';
      this.release();
      throw e;
    }
  }

  // ---- public handle -------------------------------------------------------

  flush(): Promise<void> {
    return this.drain();
  }

  async stop(): Promise<void> {
    if (this.state === 'recording') {
      this.state = 'stopped';
      this.release();
      // Nothing of ours runs in this tab any more: a copy of it may reuse the window id.
      this.identity.markGone();
    }
    await this.drain();
  }

  stats(): LucentStats {
    return {
      bufferedEvents: this.queue.length + (this.current?.count ?? 0),
      droppedEvents: this.dropped,
      rejectedEvents: this.rejected,
      sentBatches: this.sentBatches,
      sentEvents: this.sentEvents,
      state: this.state,
    };
  }

  // ---- recording -----------------------------------------------------------

  private record(event: RecordedEvent): void {
    if (this.state !== 'recording') return;
    let json: string | undefined;
    try {
      json = JSON.stringify(event);
    } catch {
      this.warnOnce('unserializable', 'an event could not be serialized and was skipped');
      return;
    }
    if (json === undefined) return;
    this.queue.push({ json, bytes: utf8Length(json) });

    const excess = this.queue.length + (this.current?.count ?? 0) - this.opts.maxBufferEvents;
    if (excess > 0) {
      // Drop the oldest events not yet committed to a batch. The committed batch
      // (usually holding the page's full snapshot) is kept and retried.
      const n = Math.min(excess, this.queue.length);
      this.queue.discard(n);
      this.dropped += n;
      this.needsSnapshot = true;
      this.warnOnce(
        'overflow',
        `buffer over ${this.opts.maxBufferEvents} events; dropping the oldest (see stats().droppedEvents)`,
      );
    }
    const full = this.queue.length >= this.opts.maxBatchEvents || this.queue.bytes >= this.opts.maxBatchBytes;
    if (full && this.deps.clock.now() >= this.blockedUntil) this.flushSoon();
  }

  // ---- sending with fetch --------------------------------------------------

  private drain(): Promise<void> {
    if (!this.draining) {
      this.draining = this.runDrain().finally(() => {
        this.draining = null;
      });
    }
    return this.draining;
  }

  private async runDrain(): Promise<void> {
    while (this.state !== 'disabled') {
      if (this.deps.clock.now() < this.blockedUntil) return;
      let batch = this.current;
      if (!batch) {
        batch = this.planBatch(this.opts.maxBatchBytes, false);
        if (!batch) return;
        this.queue.discard(batch.count);
        this.current = batch;
      }

      this.inFlight = true;
      let outcome: Outcome;
      try {
        outcome = await this.send(batch);
      } finally {
        this.inFlight = false;
      }

      switch (outcome.kind) {
        case 'accepted':
          this.current = null;
          this.attempt = 0;
          this.sentBatches++;
          this.sentEvents += batch.count;
          if (this.needsSnapshot && this.state === 'recording') {
            this.needsSnapshot = false;
            this.takeFullSnapshot();
          }
          break;
        case 'rejected':
          this.current = null;
          this.attempt = 0;
          this.rejected += batch.count;
          this.warnOnce(
            `status-${outcome.status}`,
            `the server refused a batch with ${outcome.status}; it was dropped`,
          );
          break;
        case 'unauthorized':
          this.warnOnce('401', 'the server refused the API key (401); recording and sending stopped');
          this.disable();
          return;
        case 'retry':
          // After stop() there is no later: the batch stays unsent.
          if (this.state === 'recording') this.retryLater(outcome.delayMs);
          else this.blockedUntil = this.deps.clock.now() + outcome.delayMs;
          return;
      }
    }
  }

  private async send(batch: Batch): Promise<Outcome> {
    const { transport, compress } = this.deps;
    if (compress && !batch.gzipped) {
      // Compressed once per batch: a retry sends the very same bytes.
      batch.gzipped = Promise.resolve()
        .then(() => compress(batch.body))
        .catch(() => null);
    }
    const gz = batch.gzipped ? await batch.gzipped : null;
    const headers: Record<string, string> = {
      'X-Lucent-Api-Key': this.opts.apiKey,
      'Content-Type': 'application/json',
    };
    if (gz) headers['Content-Encoding'] = 'gzip';

    let status: number;
    let retryAfter: string | null;
    try {
      ({ status, retryAfter } = await transport.post(this.url, gz ?? batch.body, headers));
    } catch {
      return { kind: 'retry', delayMs: this.backoff() };
    }
    if (status >= 200 && status < 300) return { kind: 'accepted' };
    if (status === 401) return { kind: 'unauthorized' };
    const waitMs = parseRetryAfter(retryAfter, this.deps.clock.now());
    if (status === 429) {
      // Rate limited: nothing was stored, wait as told; not a failure of the server.
      return { kind: 'retry', delayMs: waitMs ?? this.backoff() };
    }
    if (status >= 400 && status < 500 && status !== 408) {
      // 400 (empty / malformed), 413 (too large), 415 (encoding), and other client
      // errors: the same bytes would be refused again.
      return { kind: 'rejected', status };
    }
    // 5xx, 408, and anything unexpected: retry the same batch, honouring a Retry-After (503 sends one).
    const backoff = this.backoff();
    return { kind: 'retry', delayMs: waitMs === null ? backoff : Math.max(waitMs, backoff) };
  }

  /** Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)). */
  private backoff(): number {
    const bound = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** this.attempt);
    this.attempt++;
    return Math.floor(this.deps.random() * bound);
  }

  private retryLater(delayMs: number): void {
    const { clock } = this.deps;
    this.blockedUntil = clock.now() + delayMs;
    if (this.retryTimer !== null) clock.clearTimeout(this.retryTimer);
    this.retryTimer = clock.setTimeout(() => {
      this.retryTimer = null;
      void this.drain();
    }, delayMs);
  }

  // ---- sending with beacons ------------------------------------------------

  /**
   * The page may be gone in a moment. Hand what is buffered to `sendBeacon`,
   * synchronously.
   *
   * Beacon bodies are plain JSON in a text/plain Blob, not gzip: the server
   * would accept gzip bytes (it sniffs the magic), but `CompressionStream` is
   * asynchronous and nothing asynchronous is sure to run after `pagehide`.
   * text/plain is also what keeps the beacon a CORS "simple" request (an
   * application/json Blob needs a preflight, which beacons cannot do); the key
   * goes in the query string because beacons cannot set headers.
   *
   * Each beacon is at most `maxBeaconBytes`, in seq order. We stop at the first
   * beacon the browser refuses (the 64 KiB keepalive quota is shared by all
   * beacons in flight) or at an event too large for a beacon on its own: those
   * events stay buffered, so a page that lives on (tab switch, back/forward
   * cache) sends them with fetch; a page that is unloading loses them.
   */
  private onHide(reason: 'pagehide' | 'hidden'): void {
    if (reason === 'pagehide') this.identity.markGone();
    if (this.state !== 'recording') return;
    // Rate limited or in backoff: a beacon would most likely be refused too, and
    // we would never know. Keep the events for the page's next attempt.
    if (this.deps.clock.now() < this.blockedUntil) return;

    const { transport } = this.deps;
    const current = this.current;
    if (current && !this.inFlight && current.bytes <= this.opts.maxBeaconBytes) {
      if (!transport.beacon(this.beaconUrl, current.body)) return;
      this.current = null;
      this.attempt = 0;
      this.sentBatches++;
      this.sentEvents += current.count;
    }
    while (this.queue.length > 0) {
      const batch = this.planBatch(this.opts.maxBeaconBytes, true);
      if (!batch) break;
      if (!transport.beacon(this.beaconUrl, batch.body)) {
        // Refused: the events stay queued and the seq is given back, so the
        // sequence has no gap.
        this.identity.releaseSeq(batch.seq);
        break;
      }
      this.queue.discard(batch.count);
      this.sentBatches++;
      this.sentEvents += batch.count;
    }
    // Whatever did not fit goes by fetch, in case the page lives on.
    if (this.queue.length > 0 || this.current) void this.drain();
  }

  private onRestore(): void {
    this.identity.markLive();
    if (this.state !== 'recording') return;
    // The tab showed another page meanwhile (recorded under the same window):
    // a replay needs this page's DOM again.
    this.takeFullSnapshot();
  }

  private takeFullSnapshot(): void {
    try {
      this.deps.recorder.takeFullSnapshot?.();
    } catch {
      // Best effort: the replay of what follows may be incomplete, the page is unaffected.
    }
  }

  // ---- batches ---------------------------------------------------------------

  /**
   * Plan a batch of the oldest events (at most `maxBatchEvents`, at most
   * `maxBytes` of body) with the next seq. The events stay queued until the
   * caller commits with `queue.discard(batch.count)`, or gives the seq back.
   * A single event larger than `maxBytes` makes a batch of its own, unless
   * `strict` (beacons), in which case there is no batch.
   */
  private planBatch(maxBytes: number, strict: boolean): Batch | null {
    if (this.queue.length === 0) return null;
    const seq = this.identity.reserveSeq();
    const [prefix, suffix] = this.envelope(seq);
    let bytes = utf8Length(prefix) + utf8Length(suffix);
    let count = 0;
    const limit = Math.min(this.opts.maxBatchEvents, this.queue.length);
    while (count < limit) {
      const next = this.queue.at(count).bytes + (count > 0 ? 1 : 0);
      if (bytes + next > maxBytes && (count > 0 || strict)) break;
      bytes += next;
      count++;
    }
    if (count === 0) {
      this.identity.releaseSeq(seq);
      return null;
    }
    const parts: string[] = [];
    for (let i = 0; i < count; i++) parts.push(this.queue.at(i).json);
    return { seq, body: prefix + parts.join(',') + suffix, bytes, count };
  }

  /** The JSON around a batch's events: `{"sessionId":…,"seq":N,"events":[` and `],"metadata":{…}}`. */
  private envelope(seq: number): [string, string] {
    const head = JSON.stringify({ sessionId: this.sessionId, windowId: this.windowId, seq });
    let extra: Record<string, unknown> = {};
    try {
      const m = this.opts.metadata;
      extra = (typeof m === 'function' ? m() : m) ?? {};
    } catch {
      this.warnOnce('metadata', 'the metadata option threw; sending without it');
    }
    const metadata: Record<string, unknown> = { url: this.deps.currentUrl(), ...extra, sdk: `lucent-js/${SDK_VERSION}` };
    if (this.dropped > 0) metadata.droppedEvents = this.dropped;
    let meta: string;
    try {
      meta = JSON.stringify(metadata);
    } catch {
      this.warnOnce('metadata', 'the metadata option could not be serialized; sending without it');
      meta = JSON.stringify({ url: this.deps.currentUrl(), sdk: `lucent-js/${SDK_VERSION}` });
    }
    return [`${head.slice(0, -1)},"events":[`, `],"metadata":${meta}}`];
  }

  // ---- timers and shutdown ---------------------------------------------------

  private scheduleTick(): void {
    this.tickTimer = this.deps.clock.setTimeout(() => {
      this.tickTimer = null;
      if (this.state !== 'recording') return;
      void this.drain();
      this.scheduleTick();
    }, this.opts.flushIntervalMs);
  }

  /** Send as soon as possible (the buffer holds a full batch). */
  private flushSoon(): void {
    if (this.soonTimer !== null) return;
    this.soonTimer = this.deps.clock.setTimeout(() => {
      this.soonTimer = null;
      if (this.state === 'recording') void this.drain();
    }, 0);
  }

  /** 401: the key is wrong or revoked. Nothing we send can succeed; stop everything. */
  private disable(): void {
    this.state = 'disabled';
    this.release();
    this.queue.clear();
    this.current = null;
  }

  /** Stop the recorder, the timers and the lifecycle listeners. */
  private release(): void {
    const { clock } = this.deps;
    for (const t of [this.tickTimer, this.soonTimer, this.retryTimer]) if (t !== null) clock.clearTimeout(t);
    this.tickTimer = this.soonTimer = this.retryTimer = null;
    try {
      this.stopRecording?.();
    } catch {
      // The recorder failing to stop must not break the page.
    }
    this.stopRecording = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.deps.logger.warn(`[lucent] ${message}`);
  }
}

/** `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else {
    const date = Date.parse(v);
    if (Number.isNaN(date)) return null;
    ms = Math.max(0, date - now);
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

function stripUndefined<T extends object>(o: T): T {
  const out = {} as T;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
