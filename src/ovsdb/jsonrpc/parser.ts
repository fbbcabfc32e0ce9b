/**
 * Incremental splitter for a stream of concatenated JSON texts (JSON-RPC 1.0 over a byte stream,
 * as OVSDB uses it: no length prefix, no delimiter).
 *
 * It tracks nesting depth and whether it is inside a string (with backslash escapes) on raw bytes.
 * Every byte that matters (`{ } [ ] " \`) is ASCII and never appears inside a UTF-8 multi-byte
 * sequence, so scanning bytes is exact, and decoding only whole messages means a character split
 * across chunks is never decoded in halves.
 */

/** Thrown when the byte stream is not a sequence of JSON objects. */
export class FramingError extends Error {
  override name = 'FramingError';
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Default limit on one message, to stop a broken peer from growing the buffer without bound. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

export class JsonStreamParser {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  /** Feeds bytes; returns every JSON value completed by them, in order. */
  push(chunk: Buffer): unknown[] {
    const out: unknown[] = [];
    let start = 0;
    if (this.depth === 0 && this.buffered === 0) {
      start = skipWhitespace(chunk, 0);
      if (start === chunk.length) return out;
    }
    let pos = start;
    for (; pos < chunk.length; pos++) {
      const b = chunk[pos];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) this.inString = false;
        continue;
      }
      if (this.depth === 0 && b !== OPEN_BRACE && b !== OPEN_BRACKET) {
        throw new FramingError(
          `expected a JSON object or array, got ${JSON.stringify(String.fromCharCode(b))} at top level`,
        );
      }
      if (b === QUOTE) {
        this.inString = true;
      } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
        this.depth++;
      } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        this.depth--;
        if (this.depth === 0) {
          out.push(this.finish(chunk, start, pos + 1));
          start = skipWhitespace(chunk, pos + 1);
          pos = start - 1;
        }
      }
    }
    if (start < chunk.length) {
      this.chunks.push(start === 0 ? chunk : chunk.subarray(start));
      this.buffered += chunk.length - start;
      if (this.buffered > this.maxMessageBytes) {
        throw new FramingError(`JSON message exceeds ${this.maxMessageBytes} bytes`);
      }
    }
    return out;
  }

  /** Bytes of an incomplete message held back. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Forgets any partial message (after a reconnect). */
  reset(): void {
    this.chunks = [];
    this.buffered = 0;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
  }

  private finish(chunk: Buffer, start: number, end: number): unknown {
    let bytes: Buffer;
    if (this.chunks.length === 0) {
      bytes = chunk.subarray(start, end);
    } else {
      this.chunks.push(chunk.subarray(start, end));
      bytes = Buffer.concat(this.chunks);
      this.chunks = [];
      this.buffered = 0;
    }
    const text = bytes.toString('utf8');
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new FramingError(`invalid JSON message (${(err as Error).message}): ${text.slice(0, 200)}`);
    }
  }
}

function skipWhitespace(buf: Buffer, pos: number): number {
  while (pos < buf.length) {
    const b = buf[pos];
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) break;
    pos++;
  }
  return pos;
}
