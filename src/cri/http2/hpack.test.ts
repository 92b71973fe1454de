import assert from 'node:assert/strict';
import { HpackDecoder, HpackError, encodeHeaders, huffmanDecode } from './hpack';

// hpack.js, another HPACK implementation, encodes what the decoder must read back.
interface Compressor {
  write(headers: { name: string; value: string; huffman?: boolean; neverIndex?: boolean; incremental?: boolean }[]): void;
  read(): Buffer;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hpackJs = require('hpack.js') as { compressor: { create(o: { table: { maxSize: number } }): Compressor } };

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('HPACK (http2/hpack)', () => {
  it("decodes RFC 7541's Huffman-coded requests (C.4), sharing the dynamic table across blocks", () => {
    const d = new HpackDecoder(4096);
    assert.deepEqual({ ...d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')) }, { ':method': 'GET', ':scheme': 'http', ':path': '/', ':authority': 'www.example.com' });
    assert.deepEqual(
      { ...d.decode(hex('8286 84be 5886 a8eb 1064 9cbf')) },
      { ':method': 'GET', ':scheme': 'http', ':path': '/', ':authority': 'www.example.com', 'cache-control': 'no-cache' },
    );
    assert.deepEqual(
      { ...d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')) },
      { ':method': 'GET', ':scheme': 'https', ':path': '/index.html', ':authority': 'www.example.com', 'custom-key': 'custom-value' },
    );
  });

  it('reads what another encoder writes: indexing, eviction from a 256-byte table, Huffman or not, never-indexed', () => {
    const c = hpackJs.compressor.create({ table: { maxSize: 256 } });
    const d = new HpackDecoder(4096);
    for (let round = 0; round < 60; round++) {
      const headers = [];
      for (let i = 0; i < 6; i++) headers.push({ name: `x-k${(round + i) % 9}`, value: 'v'.repeat((round * 7 + i) % 40) + round, huffman: (round + i) % 2 === 0 });
      headers.push({ name: ':path', value: `/p/${round % 5}` }, { name: 'x-secret', value: `s${round}`, neverIndex: true });
      c.write(headers);
      let block = c.read();
      // The encoder's table is 256 bytes: the first block says so (a size update).
      if (round === 0) block = Buffer.concat([hex('3fe101'), block]);
      const got = d.decode(block);
      for (const h of headers) assert.equal(got[h.name], h.value, `round ${round}: ${h.name}`);
    }
  });

  it('decodes every byte value through the Huffman code', () => {
    // Each symbol's code, from hpack.js's table, packed with EOS-prefix padding.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const codes = (require('hpack.js/lib/hpack/huffman.js') as { encode: [number, number][] }).encode;
    const text = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const bits: number[] = [];
    for (const b of text) for (let i = codes[b][0] - 1; i >= 0; i--) bits.push((codes[b][1] >>> i) & 1);
    while (bits.length % 8) bits.push(1);
    const packed = Buffer.alloc(bits.length / 8);
    bits.forEach((bit, i) => (packed[i >> 3] |= bit << (7 - (i & 7))));
    assert.equal(huffmanDecode(packed, 0, packed.length), text.toString('latin1'));
  });

  it('refuses malformed blocks', () => {
    const bad: [string, Buffer][] = [
      ['indexed field 0', hex('80')],
      ['an index past the tables', hex('be')],
      ['a string past the block', hex('0003 61')],
      ['Huffman padding of 8 bits', hex('0081 ff')],
      ['Huffman padding not all ones', hex('0081 00')], // '0' is 00000 + padding 000
      ['a size update over the limit', hex('3fe120')],
      ['a size update after a field', hex('82 20')],
      ['an integer that never ends', hex('7fffffffffffff')],
    ];
    for (const [what, block] of bad) assert.throws(() => new HpackDecoder(4096).decode(block), HpackError, what);
  });

  it('evicts on a size update, and a field larger than the table empties it', () => {
    const d = new HpackDecoder(4096);
    d.decode(Buffer.concat([hex('40'), encodeString('a'), encodeString('1')])); // a: 1 into the table
    assert.equal(d.decode(hex('be'))['a'], '1');
    assert.throws(() => d.decode(hex('20 be')), HpackError, 'size 0 evicted it');
    const e = new HpackDecoder(4096);
    e.decode(Buffer.concat([hex('3f11'), hex('40'), encodeString('a'), encodeString('1')])); // table of 48 bytes
    e.decode(Buffer.concat([hex('40'), encodeString('b'), encodeString('x'.repeat(20))])); // 53 bytes: too big
    assert.throws(() => e.decode(hex('be')), HpackError, 'the table is empty');
  });

  it('encodes literals that a decoder with an empty table reads, names from the static table by index', () => {
    const block = encodeHeaders([
      [':status', '200'],
      ['content-type', 'application/grpc+proto'],
      ['grpc-message', 'x'.repeat(200)],
    ]);
    assert.equal(block[0], 0x88);
    assert.equal(block[1], 0x0f); // content-type: static 31, a 4-bit prefix that overflows
    assert.deepEqual({ ...new HpackDecoder(4096).decode(block) }, { ':status': '200', 'content-type': 'application/grpc+proto', 'grpc-message': 'x'.repeat(200) });
  });
});

function encodeString(s: string): Buffer {
  return Buffer.concat([Buffer.from([s.length]), Buffer.from(s, 'latin1')]);
}
