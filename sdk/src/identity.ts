import type { KeyValueStorage } from './types';

/** Storage keys. All live in `sessionStorage`: one tab, surviving reloads of that tab. */
export const STORAGE_KEYS = {
  sessionId: 'lucent.sid',
  /** When the session started and when the user was last active in it (ms since the epoch). */
  sessionStart: 'lucent.sstart',
  lastActivity: 'lucent.sact',
  /** `<sessionId>:1` or `<sessionId>:0`: whether the session was sampled in. */
  sampled: 'lucent.smp',
  windowId: 'lucent.wid',
  /** Present while a page of this tab is alive (removed on pagehide). See `Identity`. */
  live: 'lucent.live',
  /** Followed by `<sessionId>/<windowId>`: the next seq to use for that pair. */
  seqPrefix: 'lucent.seq:',
} as const;

/** The server's rule for session ids (and the SDK's for window ids). */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** Writes of the last-activity time are at most this frequent (it changes on every mouse move). */
const ACTIVITY_WRITE_MS = 5_000;

export interface SessionPolicy {
  now: number;
  idleTimeoutMs: number;
  maxSessionMs: number;
  sampleRate: number;
  random: () => number;
  /** False in a frame: the page does not own the tab's window id. */
  topFrame: boolean;
}

/**
 * Who this page is to the server: `(sessionId, windowId)` and the next `seq`.
 *
 * - The session id lives in `sessionStorage`, so reloads and same-tab
 *   navigations within the origin continue the session, unless it has been
 *   idle longer than `idleTimeoutMs` or lasted `maxSessionMs` (then a new one
 *   starts; `rotate` does the same while the page runs).
 * - The window id identifies one tab. `sessionStorage` is already per tab, but
 *   browsers copy it into a duplicated tab (and into `window.open` children),
 *   which would make two live tabs share `(session, window)` and overwrite each
 *   other's seqs. A "live" marker tells the cases apart: it is set while a page
 *   is alive and removed on `pagehide`, so a page that starts and finds it set
 *   is a copy of a tab that is still open (or follows a crash) and takes a new
 *   window id. A plain reload finds it unset and keeps the window id.
 * - A same-origin frame shares the tab's `sessionStorage`: it joins the session
 *   but takes a window id of its own, kept in memory, and never touches the
 *   tab's window id or live marker.
 * - `seq` is read from and written to storage each time one is reserved, never
 *   cached, so a page restored from the back/forward cache continues after the
 *   seqs used meanwhile by the page that replaced it in the same tab.
 */
export class Identity {
  sessionId!: string;
  readonly windowId: string;
  sessionStartedAt!: number;
  lastActivityAt!: number;
  readonly sampled: boolean;
  /** Floors for the next seq per key, used if storage writes fail (quota, privacy modes). */
  private memoryNext = new Map<string, number>();
  private activityWrittenAt = 0;

  constructor(
    private readonly storage: KeyValueStorage,
    private readonly newId: () => string,
    private readonly policy: SessionPolicy,
  ) {
    const now = policy.now;
    let sessionId = read(storage, STORAGE_KEYS.sessionId);
    const start = Number(read(storage, STORAGE_KEYS.sessionStart) ?? now);
    const active = Number(read(storage, STORAGE_KEYS.lastActivity) ?? now);
    const expired =
      !(Number.isFinite(start) && Number.isFinite(active)) ||
      now - active > policy.idleTimeoutMs ||
      now - start >= policy.maxSessionMs;
    if (!sessionId || !ID_PATTERN.test(sessionId) || expired) {
      this.sessionId = this.startSession(now);
    } else {
      this.sessionId = sessionId;
      this.sessionStartedAt = start;
      this.lastActivityAt = active;
      write(storage, STORAGE_KEYS.sessionStart, String(start));
      write(storage, STORAGE_KEYS.lastActivity, String(active));
    }
    // Sampling is decided once per tab and kept by later sessions of the tab.
    const smp = read(storage, STORAGE_KEYS.sampled);
    const m = smp ? /^(.*):([01])$/.exec(smp) : null;
    this.sampled = m ? m[2] === '1' : policy.sampleRate >= 1 || policy.random() < policy.sampleRate;
    this.writeSampled();

    let windowId = policy.topFrame ? read(storage, STORAGE_KEYS.windowId) : null;
    const copiedFromLiveTab = policy.topFrame && read(storage, STORAGE_KEYS.live) !== null;
    if (!windowId || !ID_PATTERN.test(windowId) || copiedFromLiveTab) {
      windowId = newId();
      if (policy.topFrame) write(storage, STORAGE_KEYS.windowId, windowId);
    }
    this.windowId = windowId;
    this.markLive();
  }

  private startSession(now: number): string {
    const id = this.newId();
    this.sessionId = id;
    this.sessionStartedAt = now;
    this.lastActivityAt = now;
    this.activityWrittenAt = now;
    write(this.storage, STORAGE_KEYS.sessionId, id);
    write(this.storage, STORAGE_KEYS.sessionStart, String(now));
    write(this.storage, STORAGE_KEYS.lastActivity, String(now));
    return id;
  }

  /** Start a new session (idle timeout or maximum length reached). The window id stays. */
  rotate(now: number): void {
    this.startSession(now);
    this.writeSampled();
  }

  /** Whether the session has to end before `now` is recorded in it. */
  expired(now: number, userActivity: boolean): boolean {
    if (now - this.sessionStartedAt >= this.policy.maxSessionMs) return true;
    return userActivity && now - this.lastActivityAt > this.policy.idleTimeoutMs;
  }

  /** The user did something at `now`. */
  touch(now: number): void {
    this.lastActivityAt = now;
    if (now - this.activityWrittenAt >= ACTIVITY_WRITE_MS) {
      this.activityWrittenAt = now;
      write(this.storage, STORAGE_KEYS.lastActivity, String(now));
    }
  }

  /** Reserve and persist the next seq for `(sessionId, windowId)`. */
  reserveSeq(sessionId: string = this.sessionId): number {
    const key = this.seqKey(sessionId);
    const stored = Number(read(this.storage, key) ?? '0');
    const seq = Math.max(Number.isSafeInteger(stored) && stored >= 0 ? stored : 0, this.memoryNext.get(key) ?? 0);
    this.memoryNext.set(key, seq + 1);
    write(this.storage, key, String(seq + 1));
    return seq;
  }

  /** Give back `seq` if it is the latest reserved one (a beacon the browser refused). */
  releaseSeq(seq: number, sessionId: string = this.sessionId): void {
    const key = this.seqKey(sessionId);
    if (this.memoryNext.get(key) !== seq + 1) return;
    this.memoryNext.set(key, seq);
    write(this.storage, key, String(seq));
  }

  /** This page is alive: a tab duplicated from now on must take a new window id. */
  markLive(): void {
    if (this.policy.topFrame) write(this.storage, STORAGE_KEYS.live, '1');
  }

  /** This page is going away (pagehide): the next page in this tab keeps the window id. */
  markGone(): void {
    if (!this.policy.topFrame) return;
    try {
      this.storage.removeItem(STORAGE_KEYS.live);
    } catch {
      // Storage unavailable: the next page will take a new window id, which is safe.
    }
  }

  private writeSampled(): void {
    write(this.storage, STORAGE_KEYS.sampled, `${this.sessionId}:${this.sampled ? 1 : 0}`);
  }

  private seqKey(sessionId: string): string {
    return `${STORAGE_KEYS.seqPrefix}${sessionId}/${this.windowId}`;
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
