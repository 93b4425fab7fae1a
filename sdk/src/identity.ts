import type { KeyValueStorage } from './types';

/** Storage keys. All live in `sessionStorage`: one tab, surviving reloads of that tab. */
export const STORAGE_KEYS = {
  sessionId: 'lucent.sid',
  windowId: 'lucent.wid',
  /** Present while a page of this tab is alive (removed on pagehide). See `Identity`. */
  live: 'lucent.live',
  /** Followed by `<sessionId>/<windowId>`: the next seq to use for that pair. */
  seqPrefix: 'lucent.seq:',
} as const;

/** The server's rule for session ids (and the SDK's for window ids). */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Who this page is to the server: `(sessionId, windowId)` and the next `seq`.
 *
 * - The session id lives in `sessionStorage`, so reloads and same-tab
 *   navigations within the origin continue the session.
 * - The window id identifies one tab. `sessionStorage` is already per tab, but
 *   browsers copy it into a duplicated tab (and into `window.open` children),
 *   which would make two live tabs share `(session, window)` and overwrite each
 *   other's seqs. A "live" marker tells the cases apart: it is set while a page
 *   is alive and removed on `pagehide`, so a page that starts and finds it set
 *   is a copy of a tab that is still open (or follows a crash) and takes a new
 *   window id. A plain reload finds it unset and keeps the window id.
 * - `seq` is read from and written to storage each time one is reserved, never
 *   cached, so a page restored from the back/forward cache continues after the
 *   seqs used meanwhile by the page that replaced it in the same tab.
 */
export class Identity {
  readonly sessionId: string;
  readonly windowId: string;
  /** Floor for the next seq, used if storage writes fail (quota, privacy modes). */
  private memoryNext = 0;

  constructor(private readonly storage: KeyValueStorage, newId: () => string) {
    let sessionId = read(storage, STORAGE_KEYS.sessionId);
    if (!sessionId || !ID_PATTERN.test(sessionId)) {
      sessionId = newId();
      write(storage, STORAGE_KEYS.sessionId, sessionId);
    }
    let windowId = read(storage, STORAGE_KEYS.windowId);
    const copiedFromLiveTab = read(storage, STORAGE_KEYS.live) !== null;
    if (!windowId || !ID_PATTERN.test(windowId) || copiedFromLiveTab) {
      windowId = newId();
      write(storage, STORAGE_KEYS.windowId, windowId);
    }
    this.sessionId = sessionId;
    this.windowId = windowId;
    this.markLive();
  }

  /** Reserve and persist the next seq for `(sessionId, windowId)`. */
  reserveSeq(): number {
    const stored = Number(read(this.storage, this.seqKey()) ?? '0');
    const seq = Math.max(Number.isSafeInteger(stored) && stored >= 0 ? stored : 0, this.memoryNext);
    this.memoryNext = seq + 1;
    write(this.storage, this.seqKey(), String(seq + 1));
    return seq;
  }

  /** Give back `seq` if it is the latest reserved one (a beacon the browser refused). */
  releaseSeq(seq: number): void {
    if (this.memoryNext !== seq + 1) return;
    this.memoryNext = seq;
    write(this.storage, this.seqKey(), String(seq));
  }

  /** This page is alive: a tab duplicated from now on must take a new window id. */
  markLive(): void {
    write(this.storage, STORAGE_KEYS.live, '1');
  }

  /** This page is going away (pagehide): the next page in this tab keeps the window id. */
  markGone(): void {
    try {
      this.storage.removeItem(STORAGE_KEYS.live);
    } catch {
      // Storage unavailable: the next page will take a new window id, which is safe.
    }
  }

  private seqKey(): string {
    return `${STORAGE_KEYS.seqPrefix}${this.sessionId}/${this.windowId}`;
  }
}

function read(storage: KeyValueStorage, key: string): string | null {
  try {
    return storage.getItem(key);
  } catch {
    return null;
  }
}

function write(storage: KeyValueStorage, key: string, value: string): void {
  try {
    storage.setItem(key, value);
  } catch {
    // Quota or privacy mode: identity still works for this page, in memory.
  }
}
