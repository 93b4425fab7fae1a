/** One recorded event, serialized once when it is recorded. */
export interface SerializedEvent {
  json: string;
  /** UTF-8 length of `json`: what it adds to a request body. */
  bytes: number;
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

  /** The i-th oldest event (0 = oldest). */
  at(i: number): SerializedEvent {
    return this.items[this.head + i];
  }

  /** Remove the `n` oldest events. */
  discard(n: number): void {
    const end = Math.min(this.head + n, this.items.length);
    for (let i = this.head; i < end; i++) this.bytes -= this.items[i].bytes;
    this.head = end;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
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
