import { fetchTransport, gzipCompressor, workerCompressor } from './transport';
import type { Clock, Deps, KeyValueStorage, Lifecycle, Logger, Recorder } from './types';

/** The real world: what `init` hands to the client in a browser. */
export function browserDeps(recorder: Recorder, logger: Logger = console): Deps {
  return {
    transport: fetchTransport,
    clock: systemClock,
    storage: sessionStorageOrMemory(),
    compress: workerCompressor(gzipCompressor()),
    random: Math.random,
    newId: randomId,
    recorder,
    lifecycle: pageLifecycle,
    logger,
    currentUrl: () => location.href,
    persistentStorage: localStorageOrMemory(),
    topFrame: isTopFrame(),
  };
}

/** Whether this page is the tab's top document (not in a frame). Cross-origin parents throw: a frame. */
export function isTopFrame(): boolean {
  try {
    return window.top === window.self;
  } catch {
    return false;
  }
}

/** `localStorage` (the opt-out outlives the tab), or a Map when it is missing or throws. */
export function localStorageOrMemory(): KeyValueStorage {
  try {
    const s = window.localStorage;
    s.getItem('lucent.optout');
    return s;
  } catch {
    return memoryStorage();
  }
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** `sessionStorage`, or a Map when it is missing or throws (sandboxed iframes, storage disabled). */
export function sessionStorageOrMemory(): KeyValueStorage {
  try {
    const s = window.sessionStorage;
    s.setItem('lucent.probe', '1');
    s.removeItem('lucent.probe');
    return s;
  } catch {
    return memoryStorage();
  }
}

export function memoryStorage(): KeyValueStorage {
  const m = new Map<string, string>();
  return {
    getItem: (k) => m.get(k) ?? null,
    setItem: (k, v) => void m.set(k, String(v)),
    removeItem: (k) => void m.delete(k),
  };
}

/**
 * A UUID v4. `crypto.randomUUID` exists only in secure contexts (https,
 * localhost); `getRandomValues` exists everywhere.
 */
export function randomId(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export const pageLifecycle: Lifecycle = {
  subscribe({ onHide, onRestore }) {
    const pagehide = () => onHide('pagehide');
    const visibility = () => {
      if (document.visibilityState === 'hidden') onHide('hidden');
    };
    const pageshow = (e: PageTransitionEvent) => {
      if (e.persisted) onRestore();
    };
    window.addEventListener('pagehide', pagehide);
    window.addEventListener('pageshow', pageshow);
    document.addEventListener('visibilitychange', visibility);
    return () => {
      window.removeEventListener('pagehide', pagehide);
      window.removeEventListener('pageshow', pageshow);
      document.removeEventListener('visibilitychange', visibility);
    };
  },
};
