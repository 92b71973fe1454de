// Older gRPC clients on a unix socket (grpc-go before 1.5x, as in kubelet <= 1.25 and
// old crictl) send the socket's path as the HTTP/2 `:authority`, e.g.
// "/run/skiff/skiff.sock". Node's HTTP/2 (nghttp2) refuses such an authority with
// PROTOCOL_ERROR, so those kubelets could not talk to skiffd at all (containerd's Go
// server accepts it). Newer clients send "localhost".
//
// skiffd looks at the client's first request before it hands a connection to the gRPC
// server. It sends the server's first SETTINGS frame itself (empty: HTTP/2's defaults),
// since grpc-go waits for it before it sends a request, reads the client's frames until
// the first header block is whole and the client has acknowledged those SETTINGS, and
// decodes that block (HPACK, with hpack.js) for `:authority`:
// - valid: the socket itself, with the bytes read so far put back (less the
//   acknowledgement, which the gRPC server, whose own SETTINGS follow, must not see),
//   goes to the gRPC server, and Node's HTTP/2 reads it natively from then on: a modern
//   client costs nothing per call (a JavaScript stream between the two cost about
//   0.3 ms a call and four writes instead of one or two);
// - not valid: the connection goes through a transport that from then on decodes every
//   header block (mirroring the client's dynamic table) and re-encodes it as literals
//   without indexing, with an authority of "localhost": the server's dynamic table stays
//   empty and every index the client uses is resolved here. HEADERS and CONTINUATION
//   frames are joined and split again to at most 16 KiB (the default
//   SETTINGS_MAX_FRAME_SIZE, which gRPC servers keep). Every other frame passes as it
//   came. Server-to-client bytes are never touched.
import { Duplex } from 'stream';
import type { Socket } from 'net';

// hpack.js has no types: the part used here.
interface HpackHeader {
  name: string;
  value: string;
}
interface Decompressor {
  write(b: Buffer): void;
  execute(): void;
  read(): HpackHeader | null;
  on(event: 'error', l: (e: Error) => void): void;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hpack = require('hpack.js') as { decompressor: { create(o: { table: { size: number } }): Decompressor } };

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER = 9;
const HEADERS = 0x1;
const SETTINGS = 0x4;
const CONTINUATION = 0x9;
const ACK = 0x1;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
/** SETTINGS_HEADER_TABLE_SIZE the server advertises (the default): the client's encoder uses it. */
const HEADER_TABLE_SIZE = 4096;
const MAX_FRAME_SIZE = 16384;
const LOCALHOST = 'localhost';
/**
 * What a client may send before its first request is whole. Until skiffd hands the
 * connection on, nobody gives the client flow-control window, so a client that keeps
 * to HTTP/2 sends a few frames and at most 64 KiB of DATA before it: more is refused.
 */
const MAX_BEFORE_REQUEST = 1 << 20;
/** A SETTINGS frame with no settings: the server's preface, before the gRPC server's own. */
export const EMPTY_SETTINGS = Buffer.from([0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);

/** What nghttp2 accepts in an authority (RFC 3986 reg-name, IP literal, port, userinfo). */
export function validAuthority(a: string): boolean {
  return a.length > 0 && /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]+$/.test(a);
}

function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A header block of literals without indexing, new names, no Huffman coding. */
export function encodeLiterals(headers: HpackHeader[]): Buffer {
  const parts: Buffer[] = [];
  for (const h of headers) {
    const name = Buffer.from(h.name, 'latin1');
    const value = Buffer.from(h.value, 'latin1');
    parts.push(Buffer.from([0x00, ...hpackInt(name.length, 7, 0)]), name, Buffer.from(hpackInt(value.length, 7, 0)), value);
  }
  return Buffer.concat(parts);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(FRAME_HEADER);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

type Mode = 'inspect' | 'pass' | 'rewrite';

/**
 * The client-to-server half: frames in, frames (some rewritten) out. The client's first
 * SETTINGS acknowledgement answers EMPTY_SETTINGS, which skiffd sent, and is dropped.
 */
export class AuthorityRewriter {
  private buf = Buffer.alloc(0);
  private prefaceSeen = false;
  mode: Mode = 'inspect';
  /** Whether the acknowledgement of EMPTY_SETTINGS came (and was dropped). */
  acked = false;
  private readonly decoder = hpack.decompressor.create({ table: { size: HEADER_TABLE_SIZE } });
  private failure: Error | null = null;

  constructor() {
    this.decoder.on('error', (e) => (this.failure = e));
  }
  /** A HEADERS frame waiting for its CONTINUATIONs: its stream, flags, priority bytes, block so far, raw frames. */
  private pending: { streamId: number; flags: number; priority: Buffer | null; block: Buffer[]; raw: Buffer[] } | null = null;

  /** Nothing left to look at: the client's bytes pass as they come. */
  passing(): boolean {
    return this.mode === 'pass' && this.acked;
  }

  /** Feed client bytes; returns the bytes to hand the server. Throws on a malformed stream. */
  push(chunk: Buffer): Buffer {
    if (this.passing()) return chunk;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    if (!this.prefaceSeen) {
      if (this.buf.length < PREFACE.length) return Buffer.alloc(0);
      if (!this.buf.subarray(0, PREFACE.length).equals(PREFACE)) throw new Error('not an HTTP/2 client preface');
      out.push(this.buf.subarray(0, PREFACE.length));
      this.buf = this.buf.subarray(PREFACE.length);
      this.prefaceSeen = true;
    }
    while (!this.passing() && this.buf.length >= FRAME_HEADER) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < FRAME_HEADER + len) break;
      const raw = this.buf.subarray(0, FRAME_HEADER + len);
      this.buf = this.buf.subarray(FRAME_HEADER + len);
      out.push(this.frame(raw));
    }
    if (this.passing() && this.buf.length) {
      out.push(this.buf);
      this.buf = Buffer.alloc(0);
    }
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  private frame(raw: Buffer): Buffer {
    const type = raw[3];
    const flags = raw[4];
    const streamId = raw.readUInt32BE(5) & 0x7fffffff;
    let payload = raw.subarray(FRAME_HEADER);
    if (this.pending) {
      if (type !== CONTINUATION || streamId !== this.pending.streamId) throw new Error('HTTP/2: a header block was interrupted');
      this.pending.block.push(payload);
      this.pending.raw.push(raw);
      return (flags & END_HEADERS) !== 0 ? this.finishBlock() : Buffer.alloc(0);
    }
    if (type === SETTINGS && (flags & ACK) !== 0 && !this.acked) {
      this.acked = true;
      return Buffer.alloc(0);
    }
    if (type !== HEADERS || this.mode === 'pass') return raw;
    let priority: Buffer | null = null;
    if (flags & PADDED) {
      const pad = payload[0];
      payload = payload.subarray(1, payload.length - pad);
    }
    if (flags & PRIORITY) {
      priority = payload.subarray(0, 5);
      payload = payload.subarray(5);
    }
    this.pending = { streamId, flags, priority, block: [payload], raw: [raw] };
    return (flags & END_HEADERS) !== 0 ? this.finishBlock() : Buffer.alloc(0);
  }

  private finishBlock(): Buffer {
    const p = this.pending!;
    this.pending = null;
    const headers = this.decode(Buffer.concat(p.block));
    if (this.mode === 'inspect') {
      const authority = headers.find((h) => h.name === ':authority');
      if (!authority || validAuthority(authority.value)) {
        // The server decodes this block as we did: its HPACK state is the client's.
        this.mode = 'pass';
        return Buffer.concat(p.raw);
      }
      this.mode = 'rewrite';
    }
    for (const h of headers) if (h.name === ':authority' && !validAuthority(h.value)) h.value = LOCALHOST;
    const block = encodeLiterals(headers);
    const frames: Buffer[] = [];
    const first = Buffer.concat([p.priority ?? Buffer.alloc(0), block.subarray(0, MAX_FRAME_SIZE - (p.priority ? 5 : 0))]);
    let off = first.length - (p.priority ? 5 : 0);
    const last = off >= block.length;
    frames.push(frame(HEADERS, (p.flags & (END_STREAM | PRIORITY)) | (last ? END_HEADERS : 0), p.streamId, first));
    while (off < block.length) {
      const piece = block.subarray(off, off + MAX_FRAME_SIZE);
      off += piece.length;
      frames.push(frame(CONTINUATION, off >= block.length ? END_HEADERS : 0, p.streamId, piece));
    }
    return Buffer.concat(frames);
  }

  private decode(block: Buffer): HpackHeader[] {
    this.failure = null;
    this.decoder.write(block);
    this.decoder.execute(); // reports a bad block through 'error', synchronously
    const headers: HpackHeader[] = [];
    for (let h = this.decoder.read(); h; h = this.decoder.read()) headers.push({ name: h.name, value: h.value });
    if (this.failure) throw new Error(`HTTP/2: bad header block: ${(this.failure as Error).message}`);
    return headers;
  }
}

/**
 * Take a client's connection: the server's first SETTINGS go out at once, and once the
 * client's first request shows its authority, `serve` gets the socket itself (a valid
 * authority) or a stream that mends every request's (see the top of this file).
 */
export function acceptConnection(sock: Socket, serve: (conn: Socket | Duplex) => void, onError: (e: Error) => void): void {
  const rewriter = new AuthorityRewriter();
  const seen: Buffer[] = [];
  let received = 0;
  const fail = (e: Error) => {
    onError(e);
    sock.destroy();
  };
  const inspect = (chunk: Buffer) => {
    received += chunk.length;
    if (received > MAX_BEFORE_REQUEST) {
      fail(new Error(`no request in the first ${MAX_BEFORE_REQUEST} bytes the client sent`));
      return;
    }
    try {
      seen.push(rewriter.push(chunk));
    } catch (e) {
      fail(e as Error);
      return;
    }
    if (rewriter.passing()) {
      sock.off('data', inspect);
      sock.off('error', ignore);
      sock.pause();
      // Node's HTTP/2 session takes the bytes already read before it reads the socket.
      sock.unshift(Buffer.concat(seen));
      serve(sock);
    } else if (rewriter.mode === 'rewrite') {
      sock.off('data', inspect);
      sock.off('error', ignore);
      serve(rewritingStream(sock, rewriter, Buffer.concat(seen), fail));
    }
  };
  // A client that goes away before its first request: nothing to serve.
  const ignore = () => {};
  sock.on('error', ignore);
  sock.on('data', inspect);
  sock.write(EMPTY_SETTINGS);
}

/**
 * The socket as the gRPC server should see it: `first`, then client bytes through the
 * rewriter, server bytes straight to the socket.
 */
function rewritingStream(sock: Socket, rewriter: AuthorityRewriter, first: Buffer, fail: (e: Error) => void): Duplex {
  const d = new Duplex({
    read() {
      sock.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      sock.write(chunk, cb);
    },
    final(cb) {
      sock.end(cb);
    },
    destroy(err, cb) {
      sock.destroy(err ?? undefined);
      cb(err);
    },
  });
  if (first.length) d.push(first);
  sock.on('data', (chunk: Buffer) => {
    let out: Buffer;
    try {
      out = rewriter.push(chunk);
    } catch (e) {
      fail(e as Error);
      return;
    }
    if (out.length && !d.push(out)) sock.pause();
  });
  sock.on('end', () => d.push(null));
  sock.on('close', () => d.destroy());
  sock.on('error', (e) => d.destroy(e));
  return d;
}
