/**
 * The seams of the SDK. Everything the client touches in the outside world
 * (network, time, storage, page lifecycle, the recorder) comes in through one
 * of these small interfaces, so tests can drive the client with fakes and the
 * browser build wires in the real thing (see `env.ts`).
 */

/** One rrweb event. Only `type` and `timestamp` matter to the SDK; the rest is opaque. */
export interface RecordedEvent {
  type: number;
  timestamp: number;
  [key: string]: unknown;
}

/** What the server answered. `retryAfter` is the raw `Retry-After` header, if readable. */
export interface TransportResponse {
  status: number;
  retryAfter: string | null;
}

export interface Transport {
  /**
   * POST `body` to `url` with `headers`. Resolves with the status for any HTTP
   * answer; rejects only for network failures (DNS, refused, CORS, aborted).
   */
  post(url: string, body: Uint8Array | string, headers: Record<string, string>, init?: PostInit): Promise<TransportResponse>;
  /**
   * Queue `body` synchronously for delivery after the page is gone
   * (`navigator.sendBeacon`). Returns false when the browser refused it,
   * e.g. because the 64 KiB in-flight keepalive quota is used up. A
   * `Uint8Array` body is gzip (the server recognises it by its magic bytes).
   */
  beacon(url: string, body: string | Uint8Array): boolean;
}

export interface PostInit {
  /** Let the request outlive the page (`fetch(…, { keepalive: true })`; body at most 64 KiB). */
  keepalive?: boolean;
  /** Aborted when the request takes longer than `requestTimeoutMs`. */
  signal?: AbortSignal;
}

/** Time source and timers. Tests use a manual clock; the browser uses Date and setTimeout. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The subset of the Web Storage API we use (`sessionStorage` in the browser). */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Starts recording; returns a function that stops it (rrweb's `record`). */
export interface Recorder {
  start(emit: (event: RecordedEvent) => void): (() => void) | undefined;
  /** Ask for a new full snapshot (after a gap, or a back/forward-cache restore). */
  takeFullSnapshot?(): void;
}

/** Page lifecycle hooks. Returns an unsubscribe function. */
export interface Lifecycle {
  subscribe(handlers: {
    /** `pagehide`, or `visibilitychange` to hidden: the page may be gone soon. */
    onHide(reason: 'pagehide' | 'hidden'): void;
    /** `pageshow` with `persisted` (restored from the back/forward cache). */
    onRestore(): void;
  }): () => void;
}

export interface Logger {
  warn(message: string): void;
}

/** gzip a string; resolves with the compressed bytes. `null` when unavailable. */
export type Compressor = ((text: string) => Promise<Uint8Array>) | null;

/** Everything injectable. `createClient` takes these; `init` fills them from the browser. */
export interface Deps {
  transport: Transport;
  clock: Clock;
  storage: KeyValueStorage;
  compress: Compressor;
  /** Uniform in [0, 1); used for backoff jitter. */
  random: () => number;
  /** A fresh id of 1–128 chars of [A-Za-z0-9._:-] (a UUID in the browser). */
  newId: () => string;
  recorder: Recorder;
  lifecycle: Lifecycle;
  logger: Logger;
  /** The current page URL, sent as `metadata.url`. */
  currentUrl: () => string;
  /** Storage that outlives the tab (`localStorage`): the opt-out. Default: in memory. */
  persistentStorage?: KeyValueStorage;
  /** False in a frame (`window !== window.top`). Default true. */
  topFrame?: boolean;
}
