/** A batch's bytes: its body built once from serialized events, and how many events fit a size. */

import { utf8Length, type SerializedEvent } from './queue';

/** A batch whose seq is fixed. Its bytes are fixed once it went out: every retry sends the same. */
export interface Batch {
  sid: string;
  seq: number;
  events: SerializedEvent[];
  body: string;
  bytes: number;
  /** gzip of `body`, started once; `gz` holds the result when it is ready (null: not available). */
  gzipping?: Promise<Uint8Array | null>;
  gz?: Uint8Array | null;
  /** A request carried it (it may have been stored: only a 413 means it surely was not). */
  transmitted: boolean;
  /** A keepalive request carrying it is on its way: it survives the page. */
  keepaliveInFlight: boolean;
}

/** A batch of `events` under `seq`, its body the events inside the envelope `env`. */
export function newBatch(sid: string, seq: number, events: SerializedEvent[], env: [string, string]): Batch {
  const body = env[0] + events.map((e) => e.json).join(',') + env[1];
  return { sid, seq, events, body, bytes: utf8Length(body), transmitted: false, keepaliveInFlight: false };
}

/** How many of `events` fit in a body of `maxBytes` around `env` (at least 1 unless `strict`). */
export function countFitting(events: SerializedEvent[], env: [string, string], maxBytes: number, strict: boolean): number {
  let bytes = utf8Length(env[0]) + utf8Length(env[1]);
  let count = 0;
  while (count < events.length) {
    const next = events[count].bytes + (count > 0 ? 1 : 0);
    if (bytes + next > maxBytes && (count > 0 || strict)) break;
    bytes += next;
    count++;
  }
  return count;
}
