// HPACK (RFC 7541) for skiffd's HTTP/2 server: a decoder for the clients' header blocks
// (indexed fields, literals, Huffman strings, the dynamic table and its size updates) and
// the encoding of the few fixed header blocks skiffd sends, as literals that never touch
// the client's dynamic table.
//
// Why not hpack.js's decompressor (a dependency already): it is a readable-stream Duplex
// that decodes Huffman strings bit by bit, which in V8's lite mode costs more than a
// whole call should. Its tables are the RFC's and are used here: the static table, and
// the Huffman code from which the decoding table below is built at load.

/** An HPACK error: the connection ends with COMPRESSION_ERROR. */
export class HpackError extends Error {}

/** Decoded header fields: the last value of each name (gRPC requests repeat none that matter). */
export type HeaderFields = Record<string, string>;

interface StaticEntry {
  name: string;
  value: string;
}
// hpack.js has no types: the two tables used here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const STATIC = (require('hpack.js/lib/hpack/static-table.js') as { table: StaticEntry[] }).table;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const HUFFMAN_CODES = (require('hpack.js/lib/hpack/huffman.js') as { encode: [bits: number, code: number][] }).encode;

/** An entry's size in the dynamic table: its octets and 32 (RFC 7541, 4.1). */
const ENTRY_OVERHEAD = 32;
const EOS = 256;

/**
 * The Huffman code as a machine that reads four bits at a time: for each node of the code
 * tree and each nibble, the node it ends at, the symbol it completed (at most one: no
 * code is shorter than five bits) and whether it met EOS, which a string must not hold.
 * Entry: node | (symbol + 1) << 8 | FAILED.
 */
const FAILED = 1 << 17;
const { steps: HUFFMAN_STEPS, accepting: HUFFMAN_ACCEPTING } = buildHuffmanMachine();

function buildHuffmanMachine(): { steps: Int32Array; accepting: Uint8Array } {
  // Tree: children[node * 2 + bit] is a node (> 0) or a symbol's leaf (-(symbol + 1)).
  const children: number[] = [0, 0];
  let nodes = 1;
  for (let sym = 0; sym < HUFFMAN_CODES.length; sym++) {
    const [bits, code] = HUFFMAN_CODES[sym];
    let node = 0;
    for (let i = bits - 1; i >= 0; i--) {
      const slot = node * 2 + ((code >>> i) & 1);
      if (i === 0) children[slot] = -(sym + 1);
      else {
        if (children[slot] === 0) {
          children[slot] = nodes++;
          children.push(0, 0);
        }
        node = children[slot];
      }
    }
  }
  // A string may end inside a code only on a prefix of EOS (all ones) shorter than 8 bits.
  const accepting = new Uint8Array(nodes);
  accepting[0] = 1;
  for (let node = 0, depth = 0; depth < 7; depth++) {
    node = children[node * 2 + 1];
    accepting[node] = 1;
  }
  const steps = new Int32Array(nodes * 16);
  for (let node = 0; node < nodes; node++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let at = node;
      let sym = -1;
      let failed = 0;
      for (let i = 3; i >= 0; i--) {
        const next = children[at * 2 + ((nibble >>> i) & 1)];
        if (next < 0) {
          sym = -next - 1;
          if (sym === EOS) failed = FAILED;
          at = 0;
        } else at = next;
      }
      steps[node * 16 + nibble] = at | ((sym + 1) << 8) | failed;
    }
  }
  return { steps, accepting };
}

/** A Huffman-coded string's text (latin1: one char a byte). */
export function huffmanDecode(src: Buffer, start: number, end: number): string {
  const out = Buffer.allocUnsafe(Math.ceil(((end - start) * 8) / 5));
  let n = 0;
  let node = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i];
    let step = HUFFMAN_STEPS[node * 16 + (byte >>> 4)];
    if (step & FAILED) throw new HpackError('Huffman string holds EOS');
    if (step & 0x1ff00) out[n++] = (step >>> 8) - 1;
    node = step & 0xff;
    step = HUFFMAN_STEPS[node * 16 + (byte & 15)];
    if (step & FAILED) throw new HpackError('Huffman string holds EOS');
    if (step & 0x1ff00) out[n++] = (step >>> 8) - 1;
    node = step & 0xff;
  }
  if (!HUFFMAN_ACCEPTING[node]) throw new HpackError('Huffman string ends inside a code');
  return out.toString('latin1', 0, n);
}

/** Decodes one connection's header blocks, in order (the dynamic table is the connection's). */
export class HpackDecoder {
  /** Dynamic table, oldest first (index 1 is the last). */
  private names: string[] = [];
  private values: string[] = [];
  private size = 0;
  private maxSize: number;
  private pos = 0;

  /** `limit`: SETTINGS_HEADER_TABLE_SIZE as the server advertised it. */
  constructor(private readonly limit: number) {
    this.maxSize = limit;
  }

  /** The fields of one whole header block; throws HpackError on a malformed one. */
  decode(block: Buffer): HeaderFields {
    const fields: HeaderFields = Object.create(null) as HeaderFields;
    this.pos = 0;
    const end = block.length;
    let fieldSeen = false;
    while (this.pos < end) {
      const b = block[this.pos];
      if (b & 0x80) {
        const index = this.integer(block, 7);
        if (index === 0) throw new HpackError('indexed field 0');
        this.lookup(index, fields);
        fieldSeen = true;
      } else if (b & 0x40) {
        const [name, value] = this.literal(block, 6);
        fields[name] = value;
        this.insert(name, value);
        fieldSeen = true;
      } else if (b & 0x20) {
        // A size update is allowed only before the block's first field (RFC 7541, 4.2).
        if (fieldSeen) throw new HpackError('dynamic table size update after a field');
        const size = this.integer(block, 5);
        if (size > this.limit) throw new HpackError(`dynamic table size ${size} over ${this.limit}`);
        this.maxSize = size;
        this.evict(0);
      } else {
        // Without indexing (0000) or never indexed (0001): the same to a server.
        const [name, value] = this.literal(block, 4);
        fields[name] = value;
        fieldSeen = true;
      }
    }
    return fields;
  }

  private integer(block: Buffer, prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let value = block[this.pos++] & max;
    if (value < max) return value;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= block.length) throw new HpackError('integer runs past the block');
      // Four continuation bytes reach 2^28 past the prefix: more than any length here can be.
      if (shift > 21) throw new HpackError('integer too large');
      const b = block[this.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return value;
    }
  }

  private string(block: Buffer): string {
    if (this.pos >= block.length) throw new HpackError('string runs past the block');
    const huffman = block[this.pos] & 0x80;
    const length = this.integer(block, 7);
    const start = this.pos;
    const end = start + length;
    if (end > block.length) throw new HpackError('string runs past the block');
    this.pos = end;
    return huffman ? huffmanDecode(block, start, end) : block.toString('latin1', start, end);
  }

  private literal(block: Buffer, prefixBits: number): [string, string] {
    const index = this.integer(block, prefixBits);
    const name = index === 0 ? this.string(block) : this.nameAt(index);
    return [name, this.string(block)];
  }

  private nameAt(index: number): string {
    if (index <= STATIC.length) return STATIC[index - 1].name;
    const at = this.names.length - (index - STATIC.length);
    if (at < 0) throw new HpackError(`index ${index} past the dynamic table`);
    return this.names[at];
  }

  private lookup(index: number, fields: HeaderFields): void {
    if (index <= STATIC.length) {
      const e = STATIC[index - 1];
      fields[e.name] = e.value;
      return;
    }
    const at = this.names.length - (index - STATIC.length);
    if (at < 0) throw new HpackError(`index ${index} past the dynamic table`);
    fields[this.names[at]] = this.values[at];
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (RFC 7541, 4.4).
    this.evict(size);
    if (size > this.maxSize) return;
    this.names.push(name);
    this.values.push(value);
    this.size += size;
  }

  /** Drop the oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    let drop = 0;
    let size = this.size;
    while (drop < this.names.length && size + room > this.maxSize) {
      size -= this.names[drop].length + this.values[drop].length + ENTRY_OVERHEAD;
      drop++;
    }
    if (drop) {
      this.names.splice(0, drop);
      this.values.splice(0, drop);
      this.size = size;
    }
  }
}

/**
 * A header block of literals without indexing and plain strings: what skiffd sends. Names
 * the static table holds are sent by index; the client's dynamic table is never touched,
 * so a block can be built once and sent on any connection.
 */
export function encodeHeaders(fields: [name: string, value: string][]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    if (name === ':status' && value === '200') {
      out.push(0x88); // static entry 8, indexed
      continue;
    }
    const index = STATIC.findIndex((e) => e.name === name) + 1;
    if (index) pushInteger(out, index, 4, 0x00);
    else {
      out.push(0x00);
      pushString(out, name);
    }
    pushString(out, value);
  }
  return Buffer.from(out);
}

function pushString(out: number[], s: string): void {
  const bytes = Buffer.from(s, 'latin1');
  pushInteger(out, bytes.length, 7, 0x00);
  for (const b of bytes) out.push(b);
}

function pushInteger(out: number[], value: number, prefixBits: number, first: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(first | value);
    return;
  }
  out.push(first | max);
  let v = value - max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}
