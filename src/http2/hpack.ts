/**
 * HPACK (RFC 7541), header compression for HTTP/2. Pure.
 *
 * - HpackDecoder: the whole format (static and dynamic tables, table size updates, integers,
 *   plain and Huffman strings, every field representation), one instance per connection: the
 *   dynamic table is connection state, so every header block the peer sends must go through it,
 *   in order, even blocks of streams that are then refused or ignored.
 * - encodeHeaderBlock: "literal without indexing" only (static-table name index when there is
 *   one, no Huffman). It never adds to the peer's dynamic table, so there is no encoder state to
 *   keep in step, and SETTINGS_HEADER_TABLE_SIZE from the peer needs no more than the optional
 *   table size update it can emit.
 *
 * Names and values are octet strings; they are mapped to JS strings as latin1 (one char per
 * octet), which keeps any octet intact and is ASCII for everything gRPC sends.
 */

/** A decoded or to-be-encoded header field: [name, value]. */
export type HeaderField = readonly [name: string, value: string];

/** The header block cannot be decoded: a connection error, COMPRESSION_ERROR (RFC 9113 4.3). */
export class HpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HpackError';
  }
}

/**
 * The decoded header list is larger than the decoder's maxHeaderListSize. The block was still
 * decoded to its end, so the dynamic table is in step and the connection remains usable.
 */
export class HeaderListSizeError extends Error {
  constructor(readonly size: number, readonly limit: number) {
    super(`header list of ${size} octets or more exceeds the limit of ${limit}`);
    this.name = 'HeaderListSizeError';
  }
}

// ---------------------------------------------------------------- static table (Appendix A)

const STATIC_TABLE: readonly HeaderField[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length; // 61

/** Lowest static index per name (what the encoder refers to). */
const STATIC_NAME_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name], i) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
});

/** The 32 octets of per-entry overhead (RFC 7541 4.1). */
const ENTRY_OVERHEAD = 32;

// ---------------------------------------------------------------- Huffman code (Appendix B)

/*
 * The Appendix B code is canonical: within a length, codes are consecutive in symbol order, and
 * each length starts right after the previous one. So the code lengths of the 257 symbols
 * (256 octets and EOS) define it completely; the codes are rebuilt from them below, and the test
 * checks samples against the codes printed in the RFC.
 */
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0-15
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16-31
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 32-47
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 48-63
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 64-79
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 80-95
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 96-111
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 112-127
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
  30, // EOS
];
const EOS = 256;
const MAX_CODE_LENGTH = 30;

/** Symbols ordered by (code length, symbol); per length: first code, count, offset in that order. */
const HUFFMAN_SYMBOLS = new Uint16Array(257);
const FIRST_CODE = new Int32Array(MAX_CODE_LENGTH + 2);
const CODE_COUNT = new Int32Array(MAX_CODE_LENGTH + 2);
const SYMBOL_OFFSET = new Int32Array(MAX_CODE_LENGTH + 2);
/** code and length of each symbol, for the encoder below. */
const HUFFMAN_CODES = new Uint32Array(257);

{
  for (const len of HUFFMAN_LENGTHS) CODE_COUNT[len]++;
  let code = 0;
  let offset = 0;
  for (let len = 1; len <= MAX_CODE_LENGTH; len++) {
    FIRST_CODE[len] = code;
    SYMBOL_OFFSET[len] = offset;
    code = (code + CODE_COUNT[len]) * 2;
    offset += CODE_COUNT[len];
  }
  const next = Int32Array.from(FIRST_CODE);
  const fill = Int32Array.from(SYMBOL_OFFSET);
  for (let sym = 0; sym <= EOS; sym++) {
    const len = HUFFMAN_LENGTHS[sym];
    HUFFMAN_CODES[sym] = next[len]++;
    HUFFMAN_SYMBOLS[fill[len]++] = sym;
  }
}

/** The RFC 7541 Appendix B code of a symbol (0-255, 256 = EOS): [code, length in bits]. */
export function huffmanCode(sym: number): [code: number, bits: number] {
  return [HUFFMAN_CODES[sym], HUFFMAN_LENGTHS[sym]];
}

/**
 * Decodes Huffman-coded octets into `out` from offset 0; returns the number of octets written
 * (`out` must hold length * 8 / 5 octets: the shortest code is 5 bits). Throws HpackError on EOS
 * in the data, and on padding longer than 7 bits or not made of ones (RFC 7541 5.2).
 */
export function huffmanDecodeInto(src: Uint8Array, start: number, end: number, out: Uint8Array): number {
  let code = 0;
  let len = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i];
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      len++;
      // Canonical code: a prefix of length `len` is a whole code iff it is below first + count.
      const idx = code - FIRST_CODE[len];
      if (idx < CODE_COUNT[len]) {
        const sym = HUFFMAN_SYMBOLS[SYMBOL_OFFSET[len] + idx];
        if (sym === EOS) throw new HpackError('Huffman string contains EOS');
        out[n++] = sym;
        code = 0;
        len = 0;
      }
    }
  }
  if (len > 7) throw new HpackError('Huffman padding longer than 7 bits');
  if (code !== (1 << len) - 1) throw new HpackError('Huffman padding is not a prefix of EOS');
  return n;
}

/** Huffman-codes octets (not used on the wire by this module's encoder; for tests and tools). */
export function huffmanEncode(data: Uint8Array): Buffer {
  let bits = 0;
  for (const b of data) bits += HUFFMAN_LENGTHS[b];
  const out = Buffer.alloc(Math.ceil(bits / 8));
  let acc = 0; // pending bits, at most 7 + 30: kept below 2^53 by flushing whole octets
  let pending = 0;
  let o = 0;
  for (const b of data) {
    acc = acc * 2 ** HUFFMAN_LENGTHS[b] + HUFFMAN_CODES[b];
    pending += HUFFMAN_LENGTHS[b];
    while (pending >= 8) {
      pending -= 8;
      const byte = Math.floor(acc / 2 ** pending);
      out[o++] = byte;
      acc -= byte * 2 ** pending;
    }
  }
  if (pending > 0) out[o] = (acc << (8 - pending)) | ((1 << (8 - pending)) - 1); // pad with EOS's leading ones
  return out;
}

// ---------------------------------------------------------------- integers (5.1)

/** Largest integer the decoder accepts: every HPACK integer here is a length, index or size. */
const MAX_INTEGER = 0xffff_ffff;

// ---------------------------------------------------------------- decoder

export interface HpackDecoderOptions {
  /**
   * Our SETTINGS_HEADER_TABLE_SIZE: the most the peer's table size updates may ask for, and the
   * initial size. Default 4096 (the protocol default, so it needs no SETTINGS entry).
   */
  maxTableSize?: number;
  /** Largest decoded header list (RFC 9113 6.5.2 sizing: name + value + 32 per field). Default unlimited. */
  maxHeaderListSize?: number;
}

export class HpackDecoder {
  private readonly limit: number;
  private readonly maxListSize: number;
  /** Current maximum size of the dynamic table (the last size update, initially the limit). */
  private maxSize: number;
  private size = 0;
  // Dynamic table, oldest first from `first`; dynamic index 1 is the last element.
  private names: string[] = [];
  private values: string[] = [];
  private first = 0;
  /** Scratch space for Huffman-decoded strings. */
  private scratch: Buffer = Buffer.allocUnsafe(256);

  constructor(opts: HpackDecoderOptions = {}) {
    this.limit = opts.maxTableSize ?? 4096;
    this.maxSize = this.limit;
    this.maxListSize = opts.maxHeaderListSize ?? Infinity;
  }

  /** Octets in the dynamic table (RFC 7541 4.1 sizing). */
  get tableSize(): number {
    return this.size;
  }

  /** The dynamic table's current maximum size (after the peer's last size update). */
  get maxTableSize(): number {
    return this.maxSize;
  }

  /** The dynamic table, newest entry first (dynamic index 1 first). */
  dynamicTable(): HeaderField[] {
    const out: HeaderField[] = [];
    for (let i = this.names.length - 1; i >= this.first; i--) out.push([this.names[i], this.values[i]]);
    return out;
  }

  /**
   * Decodes one complete header block (all its HEADERS/CONTINUATION fragments together), updating
   * the dynamic table. Throws HpackError (malformed: the connection must end with
   * COMPRESSION_ERROR) or HeaderListSizeError (the block was consumed; refuse just the stream).
   */
  decode(bytes: Uint8Array): HeaderField[] {
    const block = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    const fields: HeaderField[] = [];
    const end = block.length;
    let listSize = 0;
    let pos = 0;
    let fieldSeen = false;
    while (pos < end) {
      const b = block[pos];
      let name: string;
      let value: string;
      if (b & 0x80) {
        // 6.1 indexed field
        const index = this.readInt(block, pos, 7);
        pos = this.pos;
        if (index === 0) throw new HpackError('indexed field with index 0');
        if (index <= STATIC_COUNT) {
          [name, value] = STATIC_TABLE[index - 1];
        } else {
          const at = this.dynamicAt(index);
          name = this.names[at];
          value = this.values[at];
        }
      } else if ((b & 0xe0) === 0x20) {
        // 6.3 dynamic table size update: only before the first field of a block (4.2)
        if (fieldSeen) throw new HpackError('dynamic table size update after a header field');
        const size = this.readInt(block, pos, 5);
        pos = this.pos;
        if (size > this.limit) throw new HpackError(`dynamic table size update to ${size}, above the limit of ${this.limit}`);
        this.maxSize = size;
        this.evict(0);
        continue;
      } else {
        // 6.2.1 with incremental indexing (01), 6.2.2 without indexing (0000), 6.2.3 never indexed (0001)
        const indexing = (b & 0x40) !== 0;
        const index = this.readInt(block, pos, indexing ? 6 : 4);
        pos = this.pos;
        if (index === 0) {
          name = this.readString(block, pos);
          pos = this.pos;
        } else if (index <= STATIC_COUNT) {
          name = STATIC_TABLE[index - 1][0];
        } else {
          name = this.names[this.dynamicAt(index)];
        }
        value = this.readString(block, pos);
        pos = this.pos;
        if (indexing) this.add(name, value);
      }
      fieldSeen = true;
      // Keep decoding past the limit (the table must stay in step) but stop collecting.
      if (listSize <= this.maxListSize) {
        listSize += name.length + value.length + ENTRY_OVERHEAD;
        if (listSize <= this.maxListSize) fields.push([name, value]);
      }
    }
    if (listSize > this.maxListSize) throw new HeaderListSizeError(listSize, this.maxListSize);
    return fields;
  }

  /** Where readInt/readString stopped (a field rather than a tuple: no allocation per call). */
  private pos = 0;

  /** RFC 7541 5.1: an integer with an N-bit prefix starting at block[pos]; sets this.pos after it. */
  private readInt(block: Buffer, pos: number, prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let value = block[pos++] & max;
    if (value === max) {
      let shift = 0;
      let byte: number;
      do {
        if (pos >= block.length) throw new HpackError('truncated integer');
        byte = block[pos++];
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if (value > MAX_INTEGER || shift > 35) throw new HpackError('integer overflow');
      } while (byte & 0x80);
    }
    this.pos = pos;
    return value;
  }

  /** RFC 7541 5.2: a string literal (H bit, 7-bit prefix length, octets); sets this.pos after it. */
  private readString(block: Buffer, pos: number): string {
    if (pos >= block.length) throw new HpackError('truncated string literal');
    const huffman = (block[pos] & 0x80) !== 0;
    const len = this.readInt(block, pos, 7);
    const start = this.pos;
    const end = start + len;
    if (end > block.length) throw new HpackError('truncated string literal');
    this.pos = end;
    if (!huffman) return block.toString('latin1', start, end);
    const need = Math.ceil((len * 8) / 5);
    if (this.scratch.length < need) this.scratch = Buffer.allocUnsafe(Math.max(need, this.scratch.length * 2));
    const n = huffmanDecodeInto(block, start, end, this.scratch);
    return this.scratch.toString('latin1', 0, n);
  }

  /** Array position of dynamic-table entry `index` (62 = newest). */
  private dynamicAt(index: number): number {
    const at = this.names.length - (index - STATIC_COUNT);
    if (at < this.first) throw new HpackError(`index ${index} beyond the dynamic table (${this.names.length - this.first} entries)`);
    return at;
  }

  /** RFC 7541 4.4: evict until the entry fits, then add it; an entry larger than the table empties it. */
  private add(name: string, value: string): void {
    const entry = name.length + value.length + ENTRY_OVERHEAD;
    if (entry > this.maxSize) {
      this.evict(this.maxSize + 1); // empties the table
      return;
    }
    this.evict(entry);
    this.names.push(name);
    this.values.push(value);
    this.size += entry;
  }

  /** Evicts oldest entries until `room` more octets fit under maxSize. */
  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.first < this.names.length) {
      this.size -= this.names[this.first].length + this.values[this.first].length + ENTRY_OVERHEAD;
      this.first++;
    }
    if (this.first === this.names.length) {
      this.names = [];
      this.values = [];
      this.first = 0;
    } else if (this.first >= 32 && this.first * 2 >= this.names.length) {
      // Compact now and then, so the arrays do not grow without bound.
      this.names = this.names.slice(this.first);
      this.values = this.values.slice(this.first);
      this.first = 0;
    }
  }
}

// ---------------------------------------------------------------- encoder

// Field values must not carry NUL, CR or LF (RFC 9113 8.2.1); names must be lowercase tokens.
const BAD_VALUE = /[\0\r\n]/;
const BAD_NAME = /[^!#$%&'*+\-.^_`|~0-9a-z:]/;

/** Octets of an RFC 7541 5.1 integer with a `prefixBits`-bit prefix. */
export function intLength(value: number, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) return 1;
  let n = 2;
  for (value -= max; value >= 128; value = Math.floor(value / 128)) n++;
  return n;
}

/** Writes an RFC 7541 5.1 integer at `pos` (`first`: the pattern bits above the prefix); returns the next position. */
export function writeInt(buf: Buffer, pos: number, first: number, prefixBits: number, value: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    buf[pos++] = first | value;
    return pos;
  }
  buf[pos++] = first | max;
  for (value -= max; value >= 128; value = Math.floor(value / 128)) buf[pos++] = (value % 128) | 0x80;
  buf[pos++] = value;
  return pos;
}

/**
 * Encodes header fields as literals without indexing (RFC 7541 6.2.2), naming a static-table
 * entry when the name has one, strings without Huffman. `tableSizeUpdate`, when given, is emitted
 * first (6.3): the answer to a peer that lowered SETTINGS_HEADER_TABLE_SIZE. Strings are latin1;
 * throws TypeError for a name that is not a lowercase token or a value with NUL, CR or LF.
 */
export function encodeHeaderBlock(fields: readonly HeaderField[], tableSizeUpdate?: number): Buffer {
  let size = tableSizeUpdate === undefined ? 0 : intLength(tableSizeUpdate, 5);
  for (const [name, value] of fields) {
    if (name.length === 0 || BAD_NAME.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (BAD_VALUE.test(value)) throw new TypeError(`invalid value for header ${name}`);
    const index = STATIC_NAME_INDEX.get(name) ?? 0;
    size += intLength(index, 4) + intLength(value.length, 7) + value.length;
    if (index === 0) size += intLength(name.length, 7) + name.length;
  }
  const buf = Buffer.allocUnsafe(size);
  let pos = tableSizeUpdate === undefined ? 0 : writeInt(buf, 0, 0x20, 5, tableSizeUpdate);
  for (const [name, value] of fields) {
    const index = STATIC_NAME_INDEX.get(name) ?? 0;
    pos = writeInt(buf, pos, 0x00, 4, index);
    if (index === 0) {
      pos = writeInt(buf, pos, 0x00, 7, name.length);
      pos += buf.write(name, pos, 'latin1');
    }
    pos = writeInt(buf, pos, 0x00, 7, value.length);
    pos += buf.write(value, pos, 'latin1');
  }
  return buf;
}
