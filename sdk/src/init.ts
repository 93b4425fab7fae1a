import type { eventWithTime, recordOptions } from 'rrweb';
import { Client, type ClientOptions, type LucentHandle, type LucentStats } from './client';
import { browserDeps } from './env';
import type { RecordedEvent, Recorder } from './types';

/** rrweb's `record`, as the ESM build imports it or the script-tag build finds it on `window.rrweb`. */
export interface RecordFn {
  (options: recordOptions<eventWithTime>): (() => void) | undefined;
  takeFullSnapshot?: (isCheckout?: boolean) => void;
}

export interface InitOptions extends ClientOptions {
  /**
   * Passed to rrweb's `record` (masking, blocking, sampling…). The SDK owns
   * `emit`, and `packFn` is not allowed (the server wants plain events).
   * Default here: `maskAllInputs: true`.
   */
  recordOptions?: Omit<recordOptions<eventWithTime>, 'emit' | 'packFn'>;
}

let active: Client | null = null;

/** Build `init` around a way of finding rrweb's `record`. */
export function makeInit(getRecord: () => RecordFn | undefined): (options: InitOptions) => LucentHandle {
  return function init(options: InitOptions): LucentHandle {
    if (active && active.stats().state === 'recording') {
      console.warn('[lucent] init called twice; returning the running instance');
      return active;
    }
    // Never throw into the host page: report and return a handle that does nothing.
    if (typeof window === 'undefined' || typeof document === 'undefined') return inertHandle();
    if (!options || typeof options.apiKey !== 'string' || !options.apiKey || typeof options.endpoint !== 'string' || !options.endpoint) {
      console.error('[lucent] init needs { apiKey, endpoint }; not recording');
      return inertHandle();
    }
    const record = getRecord();
    if (typeof record !== 'function') {
      console.error('[lucent] rrweb is not loaded; not recording');
      return inertHandle();
    }
    const recorder: Recorder = {
      start: (emit) =>
        record({
          maskAllInputs: true,
          ...options.recordOptions,
          packFn: undefined,
          emit: (event) => emit(event as unknown as RecordedEvent),
        }),
      takeFullSnapshot: () => record.takeFullSnapshot?.(true),
    };
    try {
      active = new Client(options, browserDeps(recorder));
    } catch (e) {
      console.error(`[lucent] ${e instanceof Error ? e.message : String(e)}; not recording`);
      return inertHandle();
    }
    return active;
  };
}

function inertHandle(): LucentHandle {
  const stats: LucentStats = {
    bufferedEvents: 0,
    droppedEvents: 0,
    rejectedEvents: 0,
    sentBatches: 0,
    sentEvents: 0,
    state: 'stopped',
  };
  return {
    sessionId: '',
    windowId: '',
    flush: async () => {},
    stop: async () => {},
    stats: () => ({ ...stats }),
  };
}
