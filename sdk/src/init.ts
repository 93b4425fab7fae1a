import type { eventWithTime, recordOptions } from 'rrweb';
import { Client } from './client';
import type { LucentHandle, LucentStats } from './handle';
import type { ClientOptions } from './options';
import { browserDeps } from './env';
import type { RecordedEvent, Recorder } from './types';

/** rrweb's `record`, as the ESM build imports it or the script-tag build finds it on `window.rrweb`. */
export interface RecordFn {
  (options: recordOptions<eventWithTime>): (() => void) | undefined;
  takeFullSnapshot?: (isCheckout?: boolean) => void;
}

/** Privacy options, mapped onto rrweb's. Defaults in `PRIVACY_DEFAULTS` (and the README). */
export interface PrivacyOptions {
  /** Record every input's value as `*` (passwords always are). Default true. */
  maskAllInputs?: boolean;
  /** Record all text as `*` (the layout stays). Default false. */
  maskAllText?: boolean;
  /** Replace images, video, audio, SVG, embeds and icons by empty boxes of their size. Default false. */
  blockMedia?: boolean;
  /** Elements with this class (or matching this RegExp) are recorded as empty boxes. rrweb's default: `rr-block`. */
  blockClass?: string | RegExp;
  /** Elements matching this CSS selector are recorded as empty boxes. */
  blockSelector?: string;
  /** Input in elements with this class is not recorded. rrweb's default: `rr-ignore`. */
  ignoreClass?: string;
  /** Input in elements matching this CSS selector is not recorded. */
  ignoreSelector?: string;
  /** Text in elements with this class (or matching this RegExp) is masked. rrweb's default: `rr-mask`. */
  maskTextClass?: string | RegExp;
  /** Text in elements matching this CSS selector is masked. */
  maskTextSelector?: string;
}

export interface InitOptions extends ClientOptions, PrivacyOptions {
  /**
   * Passed to rrweb's `record` (sampling, plugins…). The SDK owns `emit`, and
   * `packFn` is not allowed (the server wants plain events). The privacy
   * options above win over the same settings here.
   */
  recordOptions?: Omit<recordOptions<eventWithTime>, 'emit' | 'packFn'>;
}

/** What `blockMedia` blocks (the list `@sentry/replay` uses for `blockAllMedia`). */
export const MEDIA_SELECTOR =
  'img,image,svg,video,object,picture,embed,map,audio,canvas,link[rel="icon"],link[rel="apple-touch-icon"]';

/** rrweb's record options for the privacy options. */
export function privacyRecordOptions(o: PrivacyOptions, base: InitOptions['recordOptions'] = {}): Partial<recordOptions<eventWithTime>> {
  const blockSelector = [o.blockSelector ?? base.blockSelector, o.blockMedia ? MEDIA_SELECTOR : undefined].filter(Boolean).join(',');
  const out: Partial<recordOptions<eventWithTime>> = {
    maskAllInputs: o.maskAllInputs ?? base.maskAllInputs ?? true,
  };
  const pick = <K extends keyof recordOptions<eventWithTime>>(k: K, v: recordOptions<eventWithTime>[K] | undefined) => {
    if (v !== undefined && v !== '') out[k] = v;
  };
  pick('blockSelector', blockSelector);
  pick('blockClass', o.blockClass);
  pick('ignoreClass', o.ignoreClass);
  pick('ignoreSelector', o.ignoreSelector);
  pick('maskTextClass', o.maskTextClass);
  pick('maskTextSelector', o.maskAllText ? '*' : o.maskTextSelector);
  return out;
}

let active: Client | null = null;

/** Build `init` around a way of finding rrweb's `record`. */
export function makeInit(getRecord: () => RecordFn | undefined): (options: InitOptions) => LucentHandle {
  return function init(options: InitOptions): LucentHandle {
    if (active) {
      const state = active.stats().state;
      if (state !== 'stopped' && state !== 'disabled') {
        console.warn('[lucent] init called twice; returning the running instance');
        return active;
      }
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
          ...options.recordOptions,
          ...privacyRecordOptions(options, options.recordOptions),
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
    bufferedBytes: 0,
    droppedEvents: 0,
    rejectedEvents: 0,
    sentBatches: 0,
    sentEvents: 0,
    state: 'stopped',
  };
  const nothing = () => {};
  return {
    sessionId: '',
    windowId: '',
    flush: async () => {},
    stop: async () => {},
    optOut: nothing,
    optIn: nothing,
    grantConsent: nothing,
    stats: () => ({ ...stats }),
  };
}
