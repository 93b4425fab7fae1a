import { Identity } from './identity';
import { countFitting, newBatch, type Batch } from './batch';
import type { LucentHandle, LucentState, LucentStats } from './handle';
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './options';
import { EventQueue, isSnapshot, utf8Length, type SerializedEvent } from './queue';
import { parseRetryAfter, postWithTimeout } from './transport';
import type { Deps, KeyValueStorage, RecordedEvent, TransportResponse } from './types';

export const SDK_VERSION = '0.1.0';

/** Most keepalive requests sent at once on a tab switch (each at most `maxBeaconBytes`). */
const HIDDEN_REQUESTS = 4;

/** The persistent opt-out flag (`localStorage`). */
export const OPT_OUT_KEY = 'lucent.optout';

/** rrweb incremental sources that mean a user did something (mouse, scroll, resize, input, touch, media, drag, selection). */
const USER_SOURCES = new Set([1, 2, 3, 4, 5, 6, 7, 12, 14]);

type Outcome =
  | { kind: 'accepted' }
  | { kind: 'rejected'; status: number }
  | { kind: 'too-large' }
  | { kind: 'unauthorized' }
  | { kind: 'retry'; delayMs: number }
  | { kind: 'gone' };

/**
 * The recorder's buffer and the sending state machine.
 *
 * Events are serialized as they arrive into `queue`. A send takes the oldest
 * events into a `Batch` with the next seq (persisted at once) and keeps it in
 * `current` until the server answers for it: 2xx clears it; 429, 5xx, timeouts
 * and network errors keep it and retry it later (the server stores
 * `(session, window, seq)` idempotently, so a retry can never duplicate); 413
 * splits it; 400/415 drop it; 401 shuts the client down. One request at a
 * time, in seq order, and at most one regular request per `flushIntervalMs`.
 */
export class Client implements LucentHandle {
  private readonly opts: ResolvedOptions;
  private readonly url: string;
  private readonly beaconUrl: string;
  private readonly identity: Identity;
  private readonly queue = new EventQueue();
  private readonly persistent: KeyValueStorage | undefined;

  private state: LucentState = 'recording';
  private current: Batch | null = null;
  /** A request (compression included) is under way. */
  private busy: Promise<void> | null = null;
  /** Consecutive failures: the backoff exponent. */
  private attempt = 0;
  /** No request (fetch or beacon) before this time: set by 429 and by backoff. */
  private blockedUntil = 0;
  /** The last request failed and is to be retried at `blockedUntil`, whatever the interval says. */
  private retrying = false;
  /** Send at the first chance, whatever the interval says (a full snapshot is waiting). */
  private urgent = false;
  private lastRequestAt = -Infinity;
  private lastSnapshotAt = -Infinity;
  private eventsSinceSnapshot = 0;
  /** A full snapshot event of this size was refused with 413: do not ask for another one endlessly. */
  private snapshotTooLarge = 0;
  private inCheckout = false;
  private consented = false;

  private timer: unknown = null;
  private timerAt = Infinity;
  private snapshotTimer: unknown = null;
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
    const o = resolveOptions(options);
    this.opts = o;
    const base = options.endpoint.replace(/\/+$/, '');
    this.url = `${base}/api/sdk/replay`;
    this.beaconUrl = `${this.url}?api_key=${encodeURIComponent(options.apiKey)}`;
    this.persistent = deps.persistentStorage;

    this.identity = new Identity(deps.storage, deps.newId, {
      now: deps.clock.now(),
      idleTimeoutMs: o.idleTimeoutMs,
      maxSessionMs: o.maxSessionMs,
      sampleRate: o.sampleRate,
      random: deps.random,
      topFrame: deps.topFrame !== false,
    });

    this.unsubscribe = deps.lifecycle.subscribe({
      onHide: (reason) => this.onHide(reason),
      onRestore: () => this.onRestore(),
    });
    if (!this.identity.sampled) this.state = 'sampled-out';
    else if (this.optedOut()) this.state = 'opted-out';
    else if (o.requireConsent) this.state = 'awaiting-consent';
    else this.begin();
  }

  get sessionId(): string {
    return this.identity.sessionId;
  }

  get windowId(): string {
    return this.identity.windowId;
  }

  // ---- public handle -------------------------------------------------------

  /** Send everything buffered now, one request after another. */
  async flush(): Promise<void> {
    await this.drain(false);
  }

  async stop(): Promise<void> {
    if (this.isLive()) {
      const wasRecording = this.state === 'recording';
      this.state = 'stopped';
      this.release();
      // Nothing of ours runs in this tab any more: a copy of it may reuse the window id.
      this.identity.markGone();
      if (!wasRecording) return;
    } else if (this.state !== 'stopped') return;
    await this.drain(false);
  }

  optOut(): void {
    try {
      this.persistent?.setItem(OPT_OUT_KEY, '1');
    } catch {
      // Storage unavailable: the opt-out holds for this page only.
    }
    if (this.state === 'stopped' || this.state === 'disabled' || this.state === 'sampled-out') return;
    this.state = 'opted-out';
    this.stopTimersAndRecorder();
    this.queue.clear();
    this.current = null;
  }

  optIn(): void {
    try {
      this.persistent?.removeItem(OPT_OUT_KEY);
    } catch {
      // Nothing stored, nothing to remove.
    }
    if (this.state === 'opted-out') this.resume();
  }

  grantConsent(): void {
    this.consented = true;
    if (this.state === 'awaiting-consent') this.resume();
  }

  /** Start recording unless consent is still missing; never throws into the page. */
  private resume(): void {
    if (!this.identity.sampled) {
      this.state = 'sampled-out';
      return;
    }
    if (this.opts.requireConsent && !this.consented) {
      this.state = 'awaiting-consent';
      return;
    }
    try {
      this.begin();
    } catch {
      this.warnOnce('recorder', 'the recorder failed to start; not recording');
    }
  }

  stats(): LucentStats {
    return {
      bufferedEvents: this.queue.length + (this.current?.events.length ?? 0),
      bufferedBytes: this.queue.bytes + (this.current?.bytes ?? 0),
      droppedEvents: this.dropped,
      rejectedEvents: this.rejected,
      sentBatches: this.sentBatches,
      sentEvents: this.sentEvents,
      state: this.state,
    };
  }

  // ---- recording -----------------------------------------------------------

  private begin(): void {
    this.state = 'recording';
    // rrweb takes a full snapshot when it starts: the periodic one counts from now.
    this.lastSnapshotAt = this.deps.clock.now();
    this.schedule(this.deps.clock.now() + this.opts.flushIntervalMs);
    try {
      this.stopRecording = this.deps.recorder.start((event) => this.record(event));
    } catch (e) {
      this.state = 'stopped';
      this.release();
      throw e;
    }
  }

  private isLive(): boolean {
    return this.state !== 'stopped' && this.state !== 'disabled';
  }

  private optedOut(): boolean {
    try {
      return this.persistent?.getItem(OPT_OUT_KEY) === '1';
    } catch {
      return false;
    }
  }

  private record(event: RecordedEvent): void {
    if (this.state !== 'recording') return;
    const now = this.deps.clock.now();
    const data = event.data as { source?: unknown } | undefined;
    const userActivity = event.type === 3 && USER_SOURCES.has(data?.source as number);
    if (this.identity.expired(now, userActivity)) this.rotate(now);
    if (userActivity) this.identity.touch(now);

    let json: string | undefined;
    try {
      json = JSON.stringify(event);
    } catch {
      this.warnOnce('unserializable', 'an event could not be serialized and was skipped');
      return;
    }
    if (json === undefined) return;
    const e: SerializedEvent = { json, bytes: utf8Length(json), type: event.type, sid: this.identity.sessionId };
    this.queue.push(e);

    if (event.type === 2) {
      this.lastSnapshotAt = now;
      this.eventsSinceSnapshot = 0;
      // A page is replayable only from its full snapshot: send it now, not an interval later.
      // (Periodic checkouts of a running page wait for the interval like everything else.)
      if (!this.inCheckout) {
        this.urgent = true;
        this.schedule(now);
      }
    } else if (!isSnapshot(e)) this.eventsSinceSnapshot++;

    const currentCount = this.current?.events.length ?? 0;
    const currentBytes = this.current?.bytes ?? 0;
    // The committed batch (being sent or retried) is kept; the oldest queued
    // events go first, full snapshots last.
    const n = this.queue.shrink(
      Math.max(0, this.opts.maxBufferEvents - currentCount),
      Math.max(0, this.opts.maxBufferBytes - currentBytes),
    );
    if (n > 0) {
      this.dropped += n;
      this.needsSnapshot = true;
      this.warnOnce(
        'overflow',
        `buffer over ${this.opts.maxBufferEvents} events or ${this.opts.maxBufferBytes} bytes; dropping the oldest (see stats().droppedEvents)`,
      );
    }
  }

  /** The session ended (idle or too long): what follows belongs to a new one, starting with a full snapshot. */
  private rotate(now: number): void {
    this.identity.rotate(now);
    if (this.snapshotTimer === null) {
      this.snapshotTimer = this.deps.clock.setTimeout(() => {
        this.snapshotTimer = null;
        if (this.state === 'recording') this.takeFullSnapshot();
      }, 0);
    }
  }

  // ---- sending -------------------------------------------------------------

  /** Be woken no later than `at`. */
  private schedule(at: number): void {
    if (this.state !== 'recording') return;
    if (this.timer !== null) {
      if (this.timerAt <= at) return;
      this.deps.clock.clearTimeout(this.timer);
    }
    const { clock } = this.deps;
    this.timerAt = at;
    this.timer = clock.setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.wake();
    }, Math.max(0, at - clock.now()));
  }

  /** The timer fired: send one batch if one is due, and set the next wake-up. */
  private wake(): void {
    if (this.state !== 'recording') return;
    const now = this.deps.clock.now();
    const o = this.opts;
    if (o.fullSnapshotEveryMs > 0 && this.eventsSinceSnapshot > 0 && now - this.lastSnapshotAt >= o.fullSnapshotEveryMs) {
      this.inCheckout = true;
      this.takeFullSnapshot();
      this.inCheckout = false;
    }
    if (this.busy) return; // its end wakes us again
    if (now < this.blockedUntil) return this.schedule(this.blockedUntil);
    const dueAt = this.urgent || this.retrying ? now : this.lastRequestAt + o.flushIntervalMs;
    if (now < dueAt) return this.schedule(dueAt);
    if (!this.hasSendable(now)) {
      this.urgent = false;
      const gate = this.identity.sessionStartedAt + o.minimumDurationMs;
      return this.schedule(gate > now && this.queue.length > 0 ? gate : now + o.flushIntervalMs);
    }
    this.urgent = false;
    void this.sendOne(false).then(() => this.wake());
  }

  private hasSendable(now: number): boolean {
    if (this.current) return true;
    if (this.queue.length === 0) return false;
    // minimumDurationMs: the current session's events wait until it lasted long enough.
    return this.queue.at(0).sid !== this.identity.sessionId || now >= this.identity.sessionStartedAt + this.opts.minimumDurationMs;
  }

  /** Send batches one after another until nothing is left, sending must wait, or `maxRequests` went out. */
  private async drain(keepalive: boolean, maxRequests = Infinity): Promise<void> {
    for (let n = 0; n < maxRequests && (this.state === 'recording' || this.state === 'stopped'); n++) {
      // One request at a time: wait for one the timer started.
      while (this.busy) await this.busy;
      const now = this.deps.clock.now();
      if (now < this.blockedUntil || !this.hasSendable(now)) break;
      if (!(await this.sendOne(keepalive))) break;
    }
    // Set the next wake-up (the timer does not run while a request is under way).
    if (!this.busy) this.wake();
  }

  /**
   * Send one batch: the committed one, or the next from the queue. Resolves
   * false when nothing went out or sending has to wait.
   */
  private sendOne(keepalive: boolean): Promise<boolean> {
    let done!: () => void;
    this.busy = new Promise<void>((r) => (done = r));
    return this.sendOneInner(keepalive).finally(() => {
      this.busy = null;
      done();
    });
  }

  private async sendOneInner(keepalive: boolean): Promise<boolean> {
    let batch = this.current;
    if (!batch) {
      batch = this.planBatch(this.opts.maxBatchBytes, false);
      if (!batch) return false;
      this.queue.discard(batch.events.length);
      this.current = batch;
    }
    if (keepalive && !batch.transmitted) {
      const fitted = await this.fitForKeepalive(batch);
      if (!fitted) return false; // beaconed on pagehide meanwhile
      batch = fitted;
    }

    const outcome = await this.send(batch, keepalive);
    if (outcome.kind === 'gone' || this.current !== batch) return false;
    switch (outcome.kind) {
      case 'accepted':
        this.current = null;
        this.attempt = 0;
        this.retrying = false;
        this.sentBatches++;
        this.sentEvents += batch.events.length;
        if (batch.events.some((e) => e.type === 2)) this.snapshotTooLarge = 0;
        if (this.needsSnapshot && this.state === 'recording') {
          this.needsSnapshot = false;
          this.takeFullSnapshot();
        }
        return true;
      case 'too-large':
        this.onTooLarge(batch);
        return true;
      case 'rejected':
        this.current = null;
        this.attempt = 0;
        this.retrying = false;
        this.rejected += batch.events.length;
        this.warnOnce(`status-${outcome.status}`, `the server refused a batch with ${outcome.status}; it was dropped`);
        return true;
      case 'unauthorized':
        this.warnOnce('401', 'the server refused the API key (401); recording and sending stopped');
        this.disable();
        return false;
      case 'retry':
        this.blockedUntil = this.deps.clock.now() + outcome.delayMs;
        this.retrying = true;
        return false;
    }
  }

  /**
   * 413: the server did not store it. Split the batch (same seq for the first
   * half, the rest goes back to the queue); a single event too large is
   * dropped, and rrweb asked for a new full snapshot so the replay recovers.
   */
  private onTooLarge(batch: Batch): void {
    this.retrying = batch.events.length > 1; // the split batch goes at once
    if (this.retrying) {
      const half = Math.ceil(batch.events.length / 2);
      this.queue.unshift(batch.events.slice(half));
      this.current = this.rebuild(batch, batch.events.slice(0, half));
      return;
    }
    const [event] = batch.events;
    this.current = null;
    this.rejected++;
    this.warnOnce('status-413', 'the server refused an event as too large (413); it was dropped');
    if (event.type === 2 && ++this.snapshotTooLarge > 1) return; // the page is too big to record
    if (this.state === 'recording') this.takeFullSnapshot();
  }

  /** Keep the batch's compressed body within `maxBeaconBytes` (a keepalive request's quota), splitting it if need be. */
  private async fitForKeepalive(batch: Batch): Promise<Batch | null> {
    const limit = this.opts.maxBeaconBytes;
    for (let i = 0; i < 4; i++) {
      const gz = await this.gzipOf(batch);
      if (this.current !== batch) return null;
      const size = gz ? gz.length : batch.bytes;
      if (size <= limit || batch.events.length < 2 || batch.transmitted) return batch;
      const keep = Math.max(1, Math.min(batch.events.length - 1, Math.floor((batch.events.length * limit * 0.85) / size)));
      this.queue.unshift(batch.events.slice(keep));
      batch = this.rebuild(batch, batch.events.slice(0, keep));
      this.current = batch;
    }
    return batch;
  }

  private gzipOf(batch: Batch): Promise<Uint8Array | null> {
    const { compress } = this.deps;
    if (!compress) return Promise.resolve(null);
    if (!batch.gzipping) {
      // Compressed once per batch: a retry sends the very same bytes.
      batch.gzipping = Promise.resolve()
        .then(() => compress(batch.body))
        .catch(() => null)
        .then((gz) => (batch.gz = gz));
    }
    return batch.gzipping;
  }

  private async send(batch: Batch, keepalive: boolean): Promise<Outcome> {
    const gz = await this.gzipOf(batch);
    if (this.current !== batch || !(this.state === 'recording' || this.state === 'stopped')) return { kind: 'gone' };
    const headers: Record<string, string> = {
      'X-Lucent-Api-Key': this.opts.apiKey,
      'Content-Type': 'application/json',
    };
    if (gz) headers['Content-Encoding'] = 'gzip';
    const body = gz ?? batch.body;
    const ka = keepalive && (gz ? gz.length : batch.bytes) <= this.opts.maxBeaconBytes;

    this.lastRequestAt = this.deps.clock.now();
    batch.transmitted = true;
    batch.keepaliveInFlight = ka;
    let res: TransportResponse;
    try {
      res = await postWithTimeout(this.deps, this.url, body, headers, ka, this.opts.requestTimeoutMs);
    } catch {
      return { kind: 'retry', delayMs: this.backoff() };
    } finally {
      batch.keepaliveInFlight = false;
    }
    const { status } = res;
    if (status >= 200 && status < 300) return { kind: 'accepted' };
    if (status === 401) return { kind: 'unauthorized' };
    if (status === 413) return { kind: 'too-large' };
    const waitMs = parseRetryAfter(res.retryAfter, this.deps.clock.now());
    if (status !== 429 && status !== 408 && status >= 400 && status < 500) {
      // 400 (empty / malformed), 415 (encoding), and other client errors: the same bytes would be refused again.
      return { kind: 'rejected', status };
    }
    // 429, 5xx, 408, anything unexpected: retry the same batch after a jittered
    // backoff, never before a Retry-After; a Retry-After of 0 still waits.
    const backoff = this.backoff();
    const delayMs = waitMs === null ? backoff : Math.max(waitMs, backoff) + Math.floor(this.deps.random() * this.opts.retryBaseMs);
    return { kind: 'retry', delayMs };
  }

  /** Equal-jitter exponential backoff: uniform in [b/2, b), b = min(retryMaxMs, retryBaseMs * 2^attempt). */
  private backoff(): number {
    const bound = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** this.attempt);
    this.attempt++;
    return Math.floor(bound / 2 + (this.deps.random() * bound) / 2);
  }

  // ---- leaving the page ----------------------------------------------------

  private onHide(reason: 'pagehide' | 'hidden'): void {
    if (reason === 'pagehide') {
      this.identity.markGone();
      if (this.state === 'recording') this.beaconAll();
      return;
    }
    // A tab switch: the page lives on and keeps recording. Send what is buffered
    // with keepalive requests (they survive if the tab is closed meanwhile)
    // whose answers are read: a 429 or 503 keeps the batch for later.
    // At most HIDDEN_REQUESTS of them: a large backlog must not become a burst
    // against the site's shared rate limit; the rest goes at the usual pace.
    if (this.state === 'recording') void this.drain(true, HIDDEN_REQUESTS);
  }

  /**
   * The page may be gone in a moment: hand what is buffered to `sendBeacon`,
   * synchronously. A batch whose gzip is ready goes gzip; anything else plain
   * JSON (compression is asynchronous, and nothing asynchronous is sure to run
   * after `pagehide`). Each beacon is at most `maxBeaconBytes`, in seq order;
   * we stop at the first one the browser refuses (the 64 KiB keepalive quota
   * is shared) or at an event too large for a beacon: those stay buffered, for
   * a page that lives on (back/forward cache). A batch already on its way in a
   * keepalive request is left to it (it survives the page); one in a plain fetch (which the browser
   * cancels on unload) or still being compressed is beaconed too: the server
   * stores a seq once, so a duplicate is harmless.
   */
  private beaconAll(): void {
    // Rate limited or in backoff: a beacon would most likely be refused too, and
    // we would never know. Keep the events for the page's next attempt.
    if (this.deps.clock.now() < this.blockedUntil) return;
    if (!this.hasSendable(this.deps.clock.now())) return;
    const { transport } = this.deps;
    const max = this.opts.maxBeaconBytes;
    let batch = this.current;
    if (batch && !batch.keepaliveInFlight) {
      if (!(batch.gz && batch.gz.length <= max) && batch.bytes > max && batch.events.length > 1 && !batch.transmitted) {
        // Too big for one beacon, and it never went out: send its head under its seq, the rest after it.
        const fit = countFitting(batch.events, this.envelope(batch.sid, batch.seq), max, true);
        if (fit > 0) {
          this.queue.unshift(batch.events.slice(fit));
          batch = this.current = this.rebuild(batch, batch.events.slice(0, fit));
        }
      }
      const body = batch.gz && batch.gz.length <= max ? batch.gz : batch.bytes <= max ? batch.body : null;
      // Too big for a beacon: it stays (its fetch may still arrive, or a restored page retries it).
      if (body !== null) {
        if (!transport.beacon(this.beaconUrl, body)) return;
        this.current = null;
        this.attempt = 0;
        this.retrying = false;
        this.sentBatches++;
        this.sentEvents += batch.events.length;
      }
    }
    // The server orders a window's batches by seq, not by arrival: what follows
    // may go while a keepalive request with an earlier seq is on its way.
    while (this.queue.length > 0) {
      const next = this.planBatch(max, true);
      if (!next) break;
      if (!transport.beacon(this.beaconUrl, next.body)) {
        // Refused: the events stay queued and the seq is given back, so the sequence has no gap.
        this.identity.releaseSeq(next.seq, next.sid);
        break;
      }
      this.queue.discard(next.events.length);
      this.sentBatches++;
      this.sentEvents += next.events.length;
    }
  }

  private onRestore(): void {
    this.identity.markLive();
    if (this.state !== 'recording') return;
    // The tab showed another page meanwhile (recorded under the same window):
    // a replay needs this page's DOM again.
    this.takeFullSnapshot();
  }

  private takeFullSnapshot(): void {
    this.lastSnapshotAt = this.deps.clock.now();
    this.eventsSinceSnapshot = 0;
    try {
      this.deps.recorder.takeFullSnapshot?.();
    } catch {
      // Best effort: the replay of what follows may be incomplete, the page is unaffected.
    }
  }

  // ---- batches ---------------------------------------------------------------

  /**
   * Plan a batch of the oldest events of one session (at most
   * `maxBatchEvents`, at most `maxBytes` of body) with the next seq. The events
   * stay queued until the caller commits with `queue.discard(n)`, or gives the
   * seq back. A single event larger than `maxBytes` makes a batch of its own,
   * unless `strict` (beacons), in which case there is no batch.
   */
  private planBatch(maxBytes: number, strict: boolean): Batch | null {
    if (this.queue.length === 0) return null;
    const sid = this.queue.at(0).sid;
    const seq = this.identity.reserveSeq(sid);
    const events: SerializedEvent[] = [];
    let bytes = 0;
    for (let i = 0; i < this.queue.length && events.length < this.opts.maxBatchEvents && bytes <= maxBytes; i++) {
      const e = this.queue.at(i);
      if (e.sid !== sid) break;
      events.push(e);
      bytes += e.bytes + 1;
    }
    const env = this.envelope(sid, seq);
    const count = countFitting(events, env, maxBytes, strict);
    if (count === 0) {
      this.identity.releaseSeq(seq, sid);
      return null;
    }
    return this.build(sid, seq, events.slice(0, count), env);
  }

  private build(sid: string, seq: number, events: SerializedEvent[], env = this.envelope(sid, seq)): Batch {
    return newBatch(sid, seq, events, env);
  }

  /** The same seq with fewer events (the rest went back to the queue). */
  private rebuild(batch: Batch, events: SerializedEvent[]): Batch {
    return this.build(batch.sid, batch.seq, events);
  }

  /** The JSON around a batch's events: `{"sessionId":…,"seq":N,"events":[` and `],"metadata":{…}}`. */
  private envelope(sid: string, seq: number): [string, string] {
    const head = JSON.stringify({ sessionId: sid, windowId: this.identity.windowId, seq });
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

  // ---- shutdown ----------------------------------------------------------------

  /** 401: the key is wrong or revoked. Nothing we send can succeed; stop everything. */
  private disable(): void {
    this.state = 'disabled';
    this.release();
    this.queue.clear();
    this.current = null;
  }

  private stopTimersAndRecorder(): void {
    const { clock } = this.deps;
    for (const t of [this.timer, this.snapshotTimer]) if (t !== null) clock.clearTimeout(t);
    this.timer = this.snapshotTimer = null;
    this.timerAt = Infinity;
    try {
      this.stopRecording?.();
    } catch {
      // The recorder failing to stop must not break the page.
    }
    this.stopRecording = undefined;
  }

  /** Stop the recorder, the timers and the lifecycle listeners. */
  private release(): void {
    this.stopTimersAndRecorder();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.deps.logger.warn(`[lucent] ${message}`);
  }
}
