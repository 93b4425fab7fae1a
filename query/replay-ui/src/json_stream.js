// Splits a JSON array that arrives in pieces into its elements, as soon as
// each element is complete: the events endpoint streams one JSON array
// (docs/design.md §7), and the player should start before the last byte.
//
// Only the array's structure is scanned here (brackets, strings and their
// escapes); each element is then given whole to JSON.parse, which does the
// real validation. Every character is looked at once: an element that spans
// many pieces is kept as a list of slices and joined once, when it ends.

/** Thrown when the text is not one JSON array, or ends before it does. */
export class JsonStreamError extends Error {}

export class JsonArraySplitter {
  constructor() {
    /** Nesting depth: 0 before the opening `[`, 1 between elements. */
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    /** The array's closing `]` was seen. */
    this.closed = false;
    /** Slices of the element being read, from earlier pieces. */
    this.pending = [];
    /** Whether the element being read has a non-blank character yet. */
    this.hasElement = false;
    /** The last element ended with a comma: another must follow. */
    this.sawComma = false;
  }

  /**
   * Reads the next piece of text; returns the elements it completed, parsed.
   * @param {string} text
   * @returns {unknown[]}
   */
  push(text) {
    const out = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.closed) {
        if (!isBlank(c)) throw new JsonStreamError('text after the end of the array');
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c /* \ */) this.escaped = true;
        else if (c === 0x22 /* " */) this.inString = false;
        continue;
      }
      if (this.depth === 0) {
        if (c === 0x5b /* [ */) {
          this.depth = 1;
          start = i + 1;
        } else if (!isBlank(c)) {
          throw new JsonStreamError('the body is not a JSON array');
        }
        continue;
      }
      if (this.depth === 1 && (c === 0x2c /* , */ || c === 0x5d) /* ] */) {
        const element = this.take(text, start, i);
        if (element !== null) out.push(parse(element));
        else if (c === 0x2c || this.sawComma) throw new JsonStreamError('an empty array element');
        this.sawComma = c === 0x2c;
        start = i + 1;
        if (c === 0x5d) {
          this.depth = 0;
          this.closed = true;
        }
        continue;
      }
      if (!isBlank(c)) this.hasElement = true;
      if (c === 0x22) this.inString = true;
      else if (c === 0x5b || c === 0x7b /* { */) this.depth++;
      else if (c === 0x5d || c === 0x7d /* } */) this.depth--;
    }
    if (this.depth >= 1 && start < text.length) this.pending.push(text.slice(start));
    return out;
  }

  /** The whole text was given: throws unless it was one complete array. */
  end() {
    if (!this.closed) throw new JsonStreamError('the array ended early (the stream was cut off)');
  }

  /** The element ending at `text[end]`, or null when it is blank. */
  take(text, start, end) {
    this.pending.push(text.slice(start, end));
    const element = this.hasElement ? this.pending.join('') : null;
    this.pending = [];
    this.hasElement = false;
    return element;
  }
}

function isBlank(c) {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function parse(element) {
  try {
    return JSON.parse(element);
  } catch (e) {
    throw new JsonStreamError(`an element is not valid JSON: ${e.message}`);
  }
}

/**
 * Reads a fetch Response body (a JSON array) and calls `onElements` with the
 * elements of each piece as it arrives. Resolves with the number of elements
 * once the array is complete; rejects with JsonStreamError when it is not, or
 * with the network's error when the connection drops.
 * @param {ReadableStream<Uint8Array>} body
 * @param {(elements: unknown[]) => void} onElements
 */
export async function readJsonArray(body, onElements) {
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const splitter = new JsonArraySplitter();
  let count = 0;
  for (;;) {
    const { done, value } = await reader.read();
    const text = done ? decoder.decode() : decoder.decode(value, { stream: true });
    const elements = splitter.push(text);
    count += elements.length;
    if (elements.length > 0) onElements(elements);
    if (done) break;
  }
  splitter.end();
  return count;
}
