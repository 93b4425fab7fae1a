/** One recorded event, serialized once when it is recorded. */
export interface SerializedEvent {
  json: string;
  /** UTF-8 length of `json`: what it adds to a request body. */
  bytes: number;
  /** The rrweb event type (2 = full snapshot, 4 = meta). */
  type: number;
  /** The session the event belongs to (a session can end while its events wait). */
  sid: string;
}

/** Full snapshots and the meta event before them: what a replay starts from. */
export function isSnapshot(e: SerializedEvent): boolean {
  return e.type === 2 || e.type === 4;
}

/**
 * FIFO of serialized events with O(1) amortized removal from the front
 * (dropping the oldest events of a full buffer must not be O(n) per event).
 */
export class EventQueue {
  private items: SerializedEvent[] = [];
  private head = 0;
  /** Sum of `bytes` over the queued events. */
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(event: SerializedEvent): void {
    this.items.push(event);
    this.bytes += event.bytes;
  }

  /** Put events back at the front (the tail of a batch that was split), in order. */
  unshift(events: SerializedEvent[]): void {
    this.items = events.concat(this.items.slice(this.head));
    this.head = 0;
    for (const e of events) this.bytes += e.bytes;
  }

  /** The i-th oldest event (0 = oldest). */
  at(i: number): SerializedEvent {
    return this.items[this.head + i];
  }

  /** Remove the `n` oldest events. */
  discard(n: number): void {
    const end = Math.min(this.head + n, this.items.length);
    for (let i = this.head; i < end; i++) this.bytes -= this.items[i].bytes;
    this.head = end;
    this.compact();
  }

  /**
   * Drop the oldest events until at most `maxCount` events and `maxBytes` bytes
   * remain: first the oldest that are not snapshots (a replay can start from a
   * kept snapshot), then, if that is not enough, the oldest snapshots.
   * Returns how many were dropped.
   */
  shrink(maxCount: number, maxBytes: number): number {
    let count = this.length;
    let bytes = this.bytes;
    const over = () => count > maxCount || bytes > maxBytes;
    if (!over()) return 0;
    let dropped = 0;
    const kept: SerializedEvent[] = [];
    while (over() && this.head < this.items.length) {
      const e = this.items[this.head++];
      if (isSnapshot(e)) kept.push(e);
      else {
        count--;
        bytes -= e.bytes;
        dropped++;
      }
    }
    // Only snapshots left over the bound: drop the oldest of them too.
    while (kept.length > 0 && over()) {
      bytes -= kept.shift()!.bytes;
      count--;
      dropped++;
    }
    this.items = kept.concat(this.items.slice(this.head));
    this.head = 0;
    this.bytes = bytes;
    return dropped;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** UTF-8 length of a string, as `TextEncoder` would encode it. */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c < 0xdc00 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: 2 UTF-16 units, 4 UTF-8 bytes.
      n += 2;
      i++;
    } else n += 2; // the rest of the BMP (a lone surrogate becomes U+FFFD: 3 bytes too)
  }
  return n;
}
