/** The options of `Lucent.init` that the client uses: their defaults and their checks. */

/** Options a site passes to `Lucent.init`. Defaults are in `DEFAULTS` (and the README). */
export interface ClientOptions {
  /** A public ingest key, `luc_pk_` + 32 hex characters. */
  apiKey: string;
  /** Base URL of the ingest service, e.g. `https://ingest.example.com`. */
  endpoint: string;
  /** Least time between two regular requests, in milliseconds. */
  flushIntervalMs?: number;
  /** Most events held in memory (waiting, or being retried); beyond it the oldest are dropped. */
  maxBufferEvents?: number;
  /** Most bytes of serialized events held in memory; beyond it the oldest are dropped. */
  maxBufferBytes?: number;
  /** Most events in one request (the server accepts 1..=10000). */
  maxBatchEvents?: number;
  /** Most bytes of (uncompressed) JSON in one request; under the server's 1 MiB limit even without gzip. */
  maxBatchBytes?: number;
  /** Most bytes in one beacon or keepalive body (browsers allow 64 KiB of keepalive data in flight). */
  maxBeaconBytes?: number;
  /** Backoff bound after the first failure, in milliseconds (doubles per failure). */
  retryBaseMs?: number;
  /** Cap on the backoff bound, in milliseconds. */
  retryMaxMs?: number;
  /** A request without an answer after this long is aborted and retried. */
  requestTimeoutMs?: number;
  /** A session without user activity for this long ends; the next activity starts a new one. */
  idleTimeoutMs?: number;
  /** A session never lasts longer than this; then a new one starts. */
  maxSessionMs?: number;
  /** A new full snapshot after this long (if anything happened), so long sessions stay seekable. 0: never. */
  fullSnapshotEveryMs?: number;
  /** Share of sessions recorded, 0..1 (decided once per tab). */
  sampleRate?: number;
  /** Nothing is sent before the session has lasted this long; shorter visits are never sent. */
  minimumDurationMs?: number;
  /** Record nothing until `grantConsent()` is called. */
  requireConsent?: boolean;
  /** Extra `metadata` sent with every batch (a function is called for each batch). */
  metadata?: Record<string, unknown> | (() => Record<string, unknown>);
}

export const DEFAULTS = {
  flushIntervalMs: 10_000,
  maxBufferEvents: 50_000,
  // 10 MiB of serialized events: minutes of a busy page, and a bound on memory.
  maxBufferBytes: 10_485_760,
  maxBatchEvents: 10_000,
  // 1 MiB (1_048_576) is the server's default body limit; uncompressed JSON under
  // it always fits, whether or not gzip is available.
  maxBatchBytes: 1_000_000,
  // The keepalive quota is 65_536 bytes; leave room for rounding in browsers' accounting.
  maxBeaconBytes: 64_000,
  retryBaseMs: 1_000,
  retryMaxMs: 60_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 1_800_000,
  maxSessionMs: 86_400_000,
  fullSnapshotEveryMs: 300_000,
  sampleRate: 1,
  minimumDurationMs: 0,
} as const;

/** Options that may be 0 (all others must be positive). */
const MAY_BE_ZERO = new Set<string>(['fullSnapshotEveryMs', 'sampleRate', 'minimumDurationMs']);

type NumericOption = keyof typeof DEFAULTS;
export type ResolvedOptions = { -readonly [K in NumericOption]: number } & Pick<
  ClientOptions,
  'apiKey' | 'endpoint' | 'metadata' | 'requireConsent'
>;

/** The options with their defaults filled in, checked. Throws a `TypeError` naming a bad option. */
export function resolveOptions(options: ClientOptions): ResolvedOptions {
  const o = { ...DEFAULTS, ...stripUndefined(options) } as ResolvedOptions;
  for (const k of Object.keys(DEFAULTS) as NumericOption[]) {
    const v = o[k];
    const ok = Number.isFinite(v) && (MAY_BE_ZERO.has(k) ? v >= 0 : v > 0);
    if (!ok) throw new TypeError(`Lucent: option ${k} must be a ${MAY_BE_ZERO.has(k) ? 'non-negative' : 'positive'} number`);
  }
  if (o.sampleRate > 1) throw new TypeError('Lucent: option sampleRate must be between 0 and 1');
  // A batch never holds more than the buffer may.
  o.maxBatchEvents = Math.min(o.maxBatchEvents, DEFAULTS.maxBatchEvents, o.maxBufferEvents);
  return o;
}

function stripUndefined<T extends object>(o: T): T {
  const out = {} as T;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
