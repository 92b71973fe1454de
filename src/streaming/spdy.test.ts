import assert from 'node:assert/strict';
import * as net from 'net';
import * as zlib from 'zlib';
import {
  adler32,
  controlFrame, dataFrame, decodeHeaderBlock, encodeHeaderBlock, FrameParser, goawayFrame, HeaderCompressor, HeaderDecompressor,
  pingFrame, rstFrame, settingsFrame, SpdySession, SpdyStream, windowUpdateFrame,
} from './spdy';
import { SPDY3_DICTIONARY } from './spdy_dictionary';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('SPDY/3.1 framing', () => {
  it('writes frames byte for byte as the spec lays them out', () => {
    // DATA, stream 1, FIN, "hi"
    assert.deepEqual(dataFrame(1, 1, Buffer.from('hi')), hex('00000001 01000002 6869'));
    // PING id 1: C bit + version 3, type 6, no flags, length 4
    assert.deepEqual(pingFrame(1), hex('80030006 00000004 00000001'));
    // RST_STREAM stream 3, CANCEL (5)
    assert.deepEqual(rstFrame(3, 5), hex('80030003 00000008 00000003 00000005'));
    // WINDOW_UPDATE stream 5, delta 65536
    assert.deepEqual(windowUpdateFrame(5, 65536), hex('80030009 00000008 00000005 00010000'));
    // SETTINGS, one entry: INITIAL_WINDOW_SIZE (7) = 1 MiB
    assert.deepEqual(settingsFrame([{ id: 7, value: 1 << 20 }]), hex('80030004 0000000c 00000001 00000007 00100000'));
    // GOAWAY last stream 7, status OK
    assert.deepEqual(goawayFrame(7, 0), hex('80030007 00000008 00000007 00000000'));
  });

  it('parses frames back whatever the chunking, one byte at a time included', () => {
    const wire = Buffer.concat([dataFrame(1, 1, Buffer.from('hi')), pingFrame(9), controlFrame(99, 0, Buffer.from('x'))]);
    const p = new FrameParser();
    const frames = [...wire].flatMap((b) => p.push(Buffer.from([b])));
    assert.equal(frames.length, 3);
    assert.deepEqual(frames[0], { control: false, streamId: 1, flags: 1, data: Buffer.from('hi') });
    assert.deepEqual(frames[1], { control: true, type: 6, flags: 0, payload: hex('00000009') });
    assert.equal(frames[2].control && frames[2].type, 99);
  });

  it('encodes header blocks as count, then length-prefixed names and values', () => {
    assert.deepEqual(encodeHeaderBlock({ streamType: 'error' }), hex('00000001 0000000a 73747265616d74797065 00000005 6572726f72'));
    assert.deepEqual(decodeHeaderBlock(encodeHeaderBlock({ a: '1', port: '8080' })), { a: '1', port: '8080' });
  });

  it('keeps one compression context per direction across header blocks', () => {
    const c = new HeaderCompressor();
    const d = new HeaderDecompressor();
    const blocks: Record<string, string>[] = [{ streamtype: 'error' }, { streamtype: 'stdout' }, { streamtype: 'data', port: '80', requestid: '0' }];
    for (const b of blocks) assert.deepEqual(d.decompress(c.compress(b)), b);
  });

  it('writes a zlib stream plain zlib reads with the SPDY/3 dictionary', () => {
    const c = new HeaderCompressor();
    const wire = Buffer.concat([c.compress({ streamtype: 'error' }), c.compress({ streamtype: 'stdout' })]);
    const out = zlib.inflateSync(wire, { dictionary: SPDY3_DICTIONARY, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assert.deepEqual(out, Buffer.concat([encodeHeaderBlock({ streamtype: 'error' }), encodeHeaderBlock({ streamtype: 'stdout' })]));
  });

  it('reads blocks compressed by plain zlib with the SPDY/3 dictionary', () => {
    // A real deflater's stream, cut at SYNC_FLUSH points as a peer sends it.
    const d = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY });
    const chunks: Buffer[] = [];
    d.on('data', (x: Buffer) => chunks.push(x));
    return new Promise<void>((resolve) => {
      d.write(encodeHeaderBlock({ streamtype: 'stdin' }));
      d.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        const first = Buffer.concat(chunks.splice(0));
        d.write(encodeHeaderBlock({ streamtype: 'resize' }));
        d.flush(zlib.constants.Z_SYNC_FLUSH, () => {
          const second = Buffer.concat(chunks.splice(0));
          const r = new HeaderDecompressor();
          assert.deepEqual(r.decompress(first), { streamtype: 'stdin' });
          assert.deepEqual(r.decompress(second), { streamtype: 'resize' });
          d.close();
          resolve();
        });
      });
    });
  });

  it('checks the dictionary against a one-shot zlib stream', () => {
    assert.equal(SPDY3_DICTIONARY.length, 1423);
    const raw = encodeHeaderBlock({ streamtype: 'stdin' });
    const z = zlib.deflateSync(raw, { dictionary: SPDY3_DICTIONARY, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assert.deepEqual(new HeaderDecompressor().decompress(z), { streamtype: 'stdin' });
    // And the dictionary id in the zlib header is the Adler-32 of the dictionary.
    assert.equal(z.readUInt32BE(2), adler32(SPDY3_DICTIONARY));
  });
});


describe('SPDY sessions over a socket', () => {
  let server: net.Server;
  let serverSession: SpdySession;
  let client: SpdySession;
  let clientSock: net.Socket;

  beforeEach(async () => {
    const got = new Promise<SpdySession>((resolve) => {
      server = net.createServer((s) => resolve(new SpdySession(s, { server: true })));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    clientSock = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    client = new SpdySession(clientSock, { server: false });
    serverSession = await got;
  });
  afterEach(() => {
    clientSock.destroy();
    server.close();
  });

  it('opens streams with headers, replies, and carries data both ways with half-close', async () => {
    const accepted = new Promise<SpdyStream>((r) => serverSession.on('stream', r));
    const s = client.openStream({ streamtype: 'stdin' });
    const srv = await accepted;
    assert.equal(srv.headers.streamtype, 'stdin');
    const replied = new Promise((r) => s.on('reply', r));
    srv.reply({});
    await replied;
    const got: Buffer[] = [];
    const ended = new Promise<void>((r) => srv.on('end', r));
    srv.on('data', (d) => got.push(d));
    s.write(Buffer.from('abc'));
    s.end();
    await ended;
    assert.equal(Buffer.concat(got).toString(), 'abc');
    // The client's FIN leaves the server's side open.
    const back: Buffer[] = [];
    const backEnded = new Promise<void>((r) => s.on('end', r));
    s.on('data', (d) => back.push(d));
    srv.write(Buffer.from('xyz'));
    srv.end();
    await backEnded;
    assert.equal(Buffer.concat(back).toString(), 'xyz');
  });

  it('moves several MiB each way, with window updates when the peer counts windows', async () => {
    const big = Buffer.alloc(3 << 20, 7);
    const accepted = new Promise<SpdyStream>((r) => serverSession.on('stream', r));
    client.send(settingsFrame([{ id: 7, value: 65536 }])); // the client does flow control
    const s = client.openStream({ streamtype: 'data' });
    const srv = await accepted;
    let n = 0;
    const done = new Promise<void>((r) => srv.on('end', r));
    srv.on('data', (d) => (n += d.length));
    s.write(big);
    s.end();
    await done;
    assert.equal(n, big.length);
    let m = 0;
    const back = new Promise<void>((r) => s.on('end', r));
    s.on('data', (d) => (m += d.length));
    srv.write(big);
    srv.end();
    await back;
    assert.equal(m, big.length);
  });

  it('answers pings, resets streams, and reports goaway and close', async () => {
    const pong = new Promise<number>((r) => client.on('ping', r));
    client.ping(1);
    assert.equal(await pong, 1);
    const accepted = new Promise<SpdyStream>((r) => serverSession.on('stream', r));
    const s = client.openStream({ streamtype: 'error' });
    const srv = await accepted;
    const reset = new Promise<number>((r) => s.on('reset', r));
    srv.reset(5);
    assert.equal(await reset, 5);
    const ga = new Promise<number>((r) => client.on('goaway', (last) => r(last)));
    serverSession.goaway();
    assert.equal(await ga, 1);
    const closed = new Promise<void>((r) => serverSession.on('close', r));
    client.close();
    await closed;
  });
});
