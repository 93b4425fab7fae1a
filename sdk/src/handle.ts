/** What `Lucent.init` returns to the page: the handle and its statistics. */

export type LucentState = 'recording' | 'stopped' | 'disabled' | 'opted-out' | 'awaiting-consent' | 'sampled-out';

export interface LucentStats {
  /** Events waiting to be sent, including a batch being retried. */
  bufferedEvents: number;
  /** Bytes of those events, serialized (the batch being retried counted with its envelope). */
  bufferedBytes: number;
  /** Events dropped because the buffer was full. */
  droppedEvents: number;
  /** Events in batches the server refused as malformed (400/413/415) and that were dropped. */
  rejectedEvents: number;
  /** Batches accepted by the server (2xx) or handed to `sendBeacon`. */
  sentBatches: number;
  /** Events in those batches. */
  sentEvents: number;
  /**
   * 'recording'; 'stopped' after `stop()`; 'disabled' after a 401; 'opted-out'
   * after `optOut()`; 'awaiting-consent' with `requireConsent` before
   * `grantConsent()`; 'sampled-out' when `sampleRate` left this tab out.
   */
  state: LucentState;
}

export interface LucentHandle {
  readonly sessionId: string;
  readonly windowId: string;
  /** Send everything buffered now (unless the server asked to wait). Resolves when done. */
  flush(): Promise<void>;
  /** Stop recording, make one last attempt to send the buffer, and release timers and listeners. */
  stop(): Promise<void>;
  /** Stop recording, drop the buffer, and remember (localStorage) not to record in this browser. */
  optOut(): void;
  /** Undo `optOut()`, and record from now on. */
  optIn(): void;
  /** With `requireConsent`: start recording. */
  grantConsent(): void;
  stats(): LucentStats;
}
