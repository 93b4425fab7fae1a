/**
 * Lucent browser SDK: records the page with rrweb and sends the events to a
 * Lucent ingest service (`POST /api/sdk/replay`).
 *
 * Layout:
 * - `index.ts`     this entry for bundlers (imports `record` from the `rrweb` package)
 * - `global.ts`    the script-tag entry (`window.Lucent`; rrweb from `window.rrweb`)
 * - `bundle.ts`    the script-tag entry with rrweb inside (one file, for tests and demos)
 * - `init.ts`      `init`: options, the rrweb recorder, never throwing into the page
 * - `client.ts`    buffer, batches, seq, retries, beacons: the state machine
 * - `options.ts`   the client's options, their defaults and checks
 * - `handle.ts`    what `init` returns: the handle and its statistics
 * - `batch.ts`     a batch's body, and how many events fit a size
 * - `identity.ts`  session id, window id and seq in sessionStorage
 * - `queue.ts`     the event buffer
 * - `transport.ts` fetch, sendBeacon and gzip; request timeouts, Retry-After
 * - `env.ts`       the browser's clock, storage, lifecycle and ids
 * - `types.ts`     the injectable seams (transport, clock, storage, recorder, lifecycle)
 */
import { record } from 'rrweb';
import { makeInit, type RecordFn } from './init';

export const init = makeInit(() => record as unknown as RecordFn);
export { Client, SDK_VERSION } from './client';
export { DEFAULTS } from './options';
export type { ClientOptions } from './options';
export type { LucentHandle, LucentStats } from './handle';
export type { InitOptions } from './init';
export type * from './types';

export default { init };
