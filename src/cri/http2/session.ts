// HTTP/2 (RFC 9113), the server side, on a socket: the transport under skiffd's gRPC server.
// It reads frames, decodes header blocks (hpack.ts), keeps both directions' flow-control
// windows, answers SETTINGS and PING, honours WINDOW_UPDATE, RST_STREAM and GOAWAY, and
// sends what a gRPC reply is (HEADERS, DATA, trailers) as frames written in one go.
//
// Why not Node's http2: in V8's lite mode, which keeps skiffd's idle memory low, each
// request through Node's Http2Session and Http2Stream costs about 0.7M instructions of
// JavaScript and C++ glue (stream objects, header objects, events, nghttp2 callbacks),
// where reading the frames of a call and writing its reply on the socket costs 0.15M
// (callgrind, see the commit). A protocol error ends the connection with GOAWAY; nothing a
// client sends can throw out of here.
import type { Duplex } from 'stream';
import { HeaderFields, HpackDecoder, HpackError } from './hpack';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER = 9;

const DATA = 0x0;
const HEADERS = 0x1;
const PRIORITY = 0x2;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PUSH_PROMISE = 0x5;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;

const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

/** Error codes (RFC 9113, 7). */
export const H2Error = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  ENHANCE_YOUR_CALM: 0xb,
} as const;

const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;

const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
/** The largest frame either side may send until told otherwise, and what skiffd takes. */
const DEFAULT_MAX_FRAME = 16_384;
const HEADER_TABLE_SIZE = 4096;
/**
 * What skiffd lets a client send before it reads: per stream (SETTINGS_INITIAL_WINDOW_SIZE)
 * and on the connection. A request larger than a window is read as it arrives, the window
 * given back as it is read.
 */
const STREAM_WINDOW = 1 << 20;
const CONNECTION_WINDOW = 16 << 20;
/** A header block longer than this (CONTINUATION frames joined) ends the connection. */
const MAX_HEADER_BLOCK = 1 << 20;

/** A protocol error: the connection ends with GOAWAY and this code. */
class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function frameHeader(out: Buffer, at: number, length: number, type: number, flags: number, stream: number): void {
  out[at] = length >>> 16;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out.writeUInt32BE(stream, at + 5);
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  frameHeader(out, 0, payload.length, type, flags, stream);
  payload.copy(out, FRAME_HEADER);
  return out;
}

/** The writes of one turn, up to this many bytes, are joined into one buffer. */
const COPY_AT_MOST = 64 * 1024;

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

/** skiffd's SETTINGS (header table and frame size stay at their defaults), and the connection window. */
const SERVER_PREFACE = Buffer.concat([
  frame(SETTINGS, 0, 0, Buffer.from([0, SETTINGS_INITIAL_WINDOW_SIZE, ...u32(STREAM_WINDOW)])),
  frame(WINDOW_UPDATE, 0, 0, u32(CONNECTION_WINDOW - DEFAULT_WINDOW)),
]);
const SETTINGS_ACK = frame(SETTINGS, ACK, 0, Buffer.alloc(0));

/** One request: its headers, then its DATA as it comes, then the reply written back. */
export class H2Stream {
  /** The client's DATA payloads, in order. */
  ondata: ((chunk: Buffer) => void) | null = null;
  /** The client ended its side. */
  onend: (() => void) | null = null;
  /** The stream is over: both sides ended, or reset, or the connection gone. */
  onclose: (() => void) | null = null;
  /** Written bytes can be queued again (see write()). */
  ondrain: (() => void) | null = null;
  closed = false;
  /** What skiffd may still send (the client's window for this stream). */
  sendWindow: number;
  /** DATA the client may still send before skiffd gives window back. */
  private recvWindow = STREAM_WINDOW;
  /** Read and not yet given back to the client's window. */
  private recvUnacked = 0;
  /** The client ended its side. */
  remoteEnded = false;
  /** skiffd ended its side (END_STREAM sent or queued). */
  localEnded = false;
  /** Frames waiting for window: DATA payloads, then the trailers' block last. */
  queue: Buffer[] = [];
  queuedBytes = 0;
  trailers: Buffer | null = null;

  constructor(
    readonly id: number,
    readonly headers: HeaderFields,
    private readonly session: H2Session,
  ) {
    this.sendWindow = session.peerInitialWindow;
  }

  /**
   * A whole reply: headers, one DATA payload and trailers, written at once when the window
   * takes the data (the common case), else as the window opens.
   */
  reply(head: Buffer, data: Buffer, trailers: Buffer): void {
    this.session.reply(this, head, data, trailers);
  }

  /** Headers alone (END_STREAM on them when `end`): a trailers-only answer or a stream's start. */
  respond(head: Buffer, end: boolean): void {
    this.session.sendHeaders(this, head, end);
  }

  /** DATA; false: it is queued behind the window or the socket, wait for ondrain. */
  write(data: Buffer): boolean {
    return this.session.sendData(this, data);
  }

  /** Trailers (END_STREAM), after whatever DATA is still queued. */
  end(trailers: Buffer): void {
    this.session.sendTrailers(this, trailers);
  }

  /** The client's request bytes were read: give them back to its window. */
  consumed(bytes: number): void {
    this.recvUnacked += bytes;
    if (this.recvUnacked >= STREAM_WINDOW / 2 && !this.remoteEnded && !this.closed) {
      this.recvWindow += this.recvUnacked;
      this.session.windowUpdate(this.id, this.recvUnacked);
      this.recvUnacked = 0;
    }
  }

  /** Takes `bytes` off the receive window; false when the client sent more than it had. */
  received(bytes: number): boolean {
    this.recvWindow -= bytes;
    return this.recvWindow >= 0;
  }

  /** Reset the stream (RST_STREAM with `code`) and close it. */
  reset(code: number): void {
    this.session.resetStream(this, code);
  }
}

/** The server side of one HTTP/2 connection. */
export class H2Session {
  private readonly streams = new Map<number, H2Stream>();
  private readonly decoder = new HpackDecoder(HEADER_TABLE_SIZE);
  /** Bytes read and not yet framed: the unparsed rest of the last chunks. */
  private pending: Buffer | null = null;
  private prefaceSeen = false;
  private settingsSeen = false;
  /** The highest stream id the client opened. */
  private lastStream = 0;
  /** A header block being joined from HEADERS and CONTINUATION frames. */
  private block: { stream: number; flags: number; parts: Buffer[]; size: number } | null = null;
  /** What skiffd may still send on the connection. */
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow = CONNECTION_WINDOW;
  private recvUnacked = 0;
  peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  /** Streams with DATA queued behind a window, in the order they queued. */
  private blocked: H2Stream[] = [];
  /** Writes of this turn, sent together (one syscall for frames written back to back). */
  private out: Buffer[] = [];
  private flushScheduled = false;
  /** GOAWAY sent: no new stream is taken. */
  private goingAway = false;
  closed = false;
  private readonly closeWaiters: (() => void)[] = [];

  constructor(
    private readonly sock: Duplex,
    /** A new request, its headers decoded; END_STREAM may already be in them. */
    private readonly onStream: (stream: H2Stream) => void,
    /** A protocol error that ended the connection (for the log). */
    private readonly onError: (e: Error) => void,
  ) {
    sock.on('data', (chunk: Buffer) => this.read(chunk));
    // A socket error is the client gone (a reset, a write after it left): not worth a word.
    sock.on('error', () => this.destroy());
    sock.on('close', () => this.destroy());
    sock.on('drain', () => this.drained());
    this.push(SERVER_PREFACE);
  }

  private read(chunk: Buffer): void {
    if (this.closed) return;
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    try {
      if (!this.prefaceSeen) {
        if (buf.length < PREFACE.length) {
          if (!PREFACE.subarray(0, buf.length).equals(buf)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'not an HTTP/2 connection preface');
          this.pending = buf;
          return;
        }
        if (!PREFACE.equals(buf.subarray(0, PREFACE.length))) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'not an HTTP/2 connection preface');
        this.prefaceSeen = true;
        buf = buf.subarray(PREFACE.length);
      }
      let at = 0;
      while (buf.length - at >= FRAME_HEADER) {
        const length = (buf[at] << 16) | (buf[at + 1] << 8) | buf[at + 2];
        if (length > DEFAULT_MAX_FRAME) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, `a frame of ${length} bytes, over ${DEFAULT_MAX_FRAME}`);
        if (buf.length - at < FRAME_HEADER + length) break;
        const type = buf[at + 3];
        const flags = buf[at + 4];
        const stream = buf.readUInt32BE(at + 5) & 0x7fffffff;
        this.frame(type, flags, stream, buf.subarray(at + FRAME_HEADER, at + FRAME_HEADER + length));
        at += FRAME_HEADER + length;
        if (this.closed) return;
      }
      if (at < buf.length) this.pending = buf.subarray(at);
    } catch (e) {
      if (e instanceof ConnectionError) this.fail(e.code, e.message);
      else if (e instanceof HpackError) this.fail(H2Error.COMPRESSION_ERROR, `header block: ${e.message}`);
      // A fault of skiffd's own while serving a request: this connection ends, skiffd does not.
      else this.fail(H2Error.INTERNAL_ERROR, `while serving: ${(e as Error).stack ?? String(e)}`);
    }
  }

  private frame(type: number, flags: number, stream: number, payload: Buffer): void {
    if (!this.settingsSeen && type !== SETTINGS) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'the first frame is not SETTINGS');
    if (this.block && type !== CONTINUATION) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'a header block interrupted');
    switch (type) {
      case DATA:
        return this.data(flags, stream, payload);
      case HEADERS:
        return this.headers(flags, stream, payload);
      case CONTINUATION:
        return this.continuation(flags, stream, payload);
      case PRIORITY:
        if (stream === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'PRIORITY not 5 bytes');
        return;
      case RST_STREAM:
        return this.rstStream(stream, payload);
      case SETTINGS:
        return this.settings(flags, stream, payload);
      case PUSH_PROMISE:
        throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      case PING:
        if (stream !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'PING not 8 bytes');
        if (!(flags & ACK)) this.push(frame(PING, ACK, 0, payload));
        return;
      case GOAWAY:
        if (stream !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'GOAWAY on a stream');
        // The client opens no more streams; those under way finish, then it closes.
        return;
      case WINDOW_UPDATE:
        return this.windowUpdated(stream, payload);
      default:
        return; // Unknown frame types are ignored (RFC 9113, 4.1).
    }
  }

  /** A frame's payload less its padding (PADDED flag: a length byte first). */
  private unpadded(flags: number, payload: Buffer, skip: number): Buffer {
    if (!(flags & PADDED)) return skip ? payload.subarray(skip) : payload;
    if (payload.length < 1 + skip) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'padded frame too short');
    const pad = payload[0];
    if (pad > payload.length - 1 - skip) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'padding longer than the frame');
    return payload.subarray(1 + skip, payload.length - pad);
  }

  private data(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'DATA on stream 0');
    if (id > this.lastStream) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `DATA on idle stream ${id}`);
    // Flow control counts the whole frame, padding included.
    this.recvWindow -= payload.length;
    if (this.recvWindow < 0) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'DATA past the connection window');
    this.connectionConsumed(payload.length);
    const stream = this.streams.get(id);
    // A stream already answered and closed: its late DATA is dropped.
    if (!stream || stream.remoteEnded) {
      if (stream) this.resetStream(stream, H2Error.STREAM_CLOSED);
      return;
    }
    if (!stream.received(payload.length)) {
      this.resetStream(stream, H2Error.FLOW_CONTROL_ERROR);
      return;
    }
    const body = this.unpadded(flags, payload, 0);
    if (body.length < payload.length) stream.consumed(payload.length - body.length);
    if (body.length) stream.ondata?.(body);
    if (flags & END_STREAM) this.remoteEnd(stream);
  }

  private connectionConsumed(bytes: number): void {
    this.recvUnacked += bytes;
    if (this.recvUnacked >= CONNECTION_WINDOW / 2) {
      this.recvWindow += this.recvUnacked;
      this.windowUpdate(0, this.recvUnacked);
      this.recvUnacked = 0;
    }
  }

  private headers(flags: number, id: number, payload: Buffer): void {
    if (id === 0 || !(id & 1)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `HEADERS on stream ${id}`);
    const fragment = this.unpadded(flags, payload, flags & PRIORITY_FLAG ? 5 : 0);
    if (flags & END_HEADERS) this.headerBlock(id, flags, fragment);
    else this.block = { stream: id, flags, parts: [fragment], size: fragment.length };
  }

  private continuation(flags: number, id: number, payload: Buffer): void {
    const block = this.block;
    if (!block || block.stream !== id) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'CONTINUATION outside a header block');
    block.parts.push(payload);
    block.size += payload.length;
    if (block.size > MAX_HEADER_BLOCK) throw new ConnectionError(H2Error.ENHANCE_YOUR_CALM, `a header block over ${MAX_HEADER_BLOCK} bytes`);
    if (!(flags & END_HEADERS)) return;
    this.block = null;
    this.headerBlock(id, block.flags, Buffer.concat(block.parts, block.size));
  }

  private headerBlock(id: number, flags: number, block: Buffer): void {
    // Decoded whatever becomes of the stream: the dynamic table is the connection's.
    const fields = this.decoder.decode(block);
    if (id <= this.lastStream) {
      // Trailers on an open request (gRPC clients send none): they end its side.
      const stream = this.streams.get(id);
      if (!stream || stream.remoteEnded) throw new ConnectionError(H2Error.STREAM_CLOSED, `HEADERS on closed stream ${id}`);
      if (!(flags & END_STREAM)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `trailers without END_STREAM on stream ${id}`);
      this.remoteEnd(stream);
      return;
    }
    this.lastStream = id;
    if (this.goingAway) {
      this.push(frame(RST_STREAM, 0, id, u32(H2Error.REFUSED_STREAM)));
      return;
    }
    const stream = new H2Stream(id, fields, this);
    this.streams.set(id, stream);
    if (flags & END_STREAM) stream.remoteEnded = true;
    this.onStream(stream);
    if (stream.remoteEnded && !stream.closed) stream.onend?.();
  }

  private remoteEnd(stream: H2Stream): void {
    stream.remoteEnded = true;
    if (stream.localEnded && !stream.queue.length && !stream.trailers) this.closeStream(stream);
    else stream.onend?.();
  }

  private rstStream(id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'RST_STREAM not 4 bytes');
    if (id > this.lastStream) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
    const stream = this.streams.get(id);
    if (stream) this.closeStream(stream);
  }

  private settings(flags: number, id: number, payload: Buffer): void {
    if (id !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & ACK) {
      if (payload.length) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'SETTINGS not a multiple of 6 bytes');
    this.settingsSeen = true;
    for (let at = 0; at < payload.length; at += 6) {
      const key = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (key === SETTINGS_INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const s of this.streams.values()) {
          s.sendWindow += delta;
          if (s.sendWindow > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'a stream window over 2^31-1');
        }
      } else if (key === SETTINGS_MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME || value > 0xffffff) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value}`);
        this.peerMaxFrame = value;
      }
      // SETTINGS_HEADER_TABLE_SIZE sizes the client's decoder, which skiffd's literals
      // never fill; push, concurrency and header-list limits concern what skiffd does not do.
    }
    this.push(SETTINGS_ACK);
    this.unblock();
  }

  private windowUpdated(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'WINDOW_UPDATE not 4 bytes');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (increment === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'the connection window over 2^31-1');
      this.unblock();
      return;
    }
    if (id > this.lastStream) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
    const stream = this.streams.get(id);
    if (!stream) return;
    if (increment === 0) return this.resetStream(stream, H2Error.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.resetStream(stream, H2Error.FLOW_CONTROL_ERROR);
    if (stream.queue.length || stream.trailers) this.unblock();
  }

  // --- Sending -----------------------------------------------------------------------

  reply(stream: H2Stream, head: Buffer, data: Buffer, trailers: Buffer): void {
    if (stream.closed || stream.localEnded) return;
    const n = data.length;
    if (n > this.sendWindow || n > stream.sendWindow || n > this.peerMaxFrame || head.length > this.peerMaxFrame || trailers.length > this.peerMaxFrame) {
      this.sendHeaders(stream, head, false);
      this.sendData(stream, data);
      this.sendTrailers(stream, trailers);
      return;
    }
    this.sendWindow -= n;
    stream.sendWindow -= n;
    stream.localEnded = true;
    const out = Buffer.allocUnsafe(3 * FRAME_HEADER + head.length + n + trailers.length);
    frameHeader(out, 0, head.length, HEADERS, END_HEADERS, stream.id);
    head.copy(out, FRAME_HEADER);
    let at = FRAME_HEADER + head.length;
    frameHeader(out, at, n, DATA, 0, stream.id);
    data.copy(out, at + FRAME_HEADER);
    at += FRAME_HEADER + n;
    frameHeader(out, at, trailers.length, HEADERS, END_STREAM | END_HEADERS, stream.id);
    trailers.copy(out, at + FRAME_HEADER);
    // Nothing else waiting to go out (a reply usually comes on a turn of its own): write now
    // rather than a tick later.
    if (!this.out.length && !this.closed) this.sock.write(out);
    else this.push(out);
    this.localEnd(stream);
  }

  sendHeaders(stream: H2Stream, head: Buffer, end: boolean): void {
    if (stream.closed || stream.localEnded) return;
    this.pushHeaderBlock(stream.id, head, end);
    if (end) {
      stream.localEnded = true;
      this.localEnd(stream);
    }
  }

  /** A header block as HEADERS and, past the client's frame size, CONTINUATION frames. */
  private pushHeaderBlock(id: number, block: Buffer, end: boolean): void {
    const max = this.peerMaxFrame;
    let first = true;
    for (let at = 0; first || at < block.length; at += max) {
      const part = block.subarray(at, at + max);
      const last = at + max >= block.length;
      this.push(frame(first ? HEADERS : CONTINUATION, (first && end ? END_STREAM : 0) | (last ? END_HEADERS : 0), id, part));
      first = false;
    }
  }

  sendData(stream: H2Stream, data: Buffer): boolean {
    if (stream.closed || stream.localEnded) return false;
    if (data.length) {
      stream.queue.push(data);
      stream.queuedBytes += data.length;
    }
    this.sendQueued(stream);
    return !stream.queue.length && !this.sock.writableNeedDrain;
  }

  sendTrailers(stream: H2Stream, trailers: Buffer): void {
    if (stream.closed || stream.localEnded) return;
    stream.localEnded = true;
    stream.trailers = trailers;
    this.sendQueued(stream);
  }

  /** Send what the windows let through of a stream's queue; the trailers once it is empty. */
  private sendQueued(stream: H2Stream): void {
    while (stream.queue.length) {
      const room = Math.min(this.sendWindow, stream.sendWindow, this.peerMaxFrame);
      if (room <= 0) {
        if (!this.blocked.includes(stream)) this.blocked.push(stream);
        return;
      }
      const head = stream.queue[0];
      const part = head.length <= room ? head : head.subarray(0, room);
      if (part === head) stream.queue.shift();
      else stream.queue[0] = head.subarray(room);
      stream.queuedBytes -= part.length;
      this.sendWindow -= part.length;
      stream.sendWindow -= part.length;
      // The payload goes out as it is, behind a header of its own: copying a 16 MiB
      // reply into 16 KiB frames would be a thousand mallocs that fragment skiffd's heap.
      const header = Buffer.allocUnsafe(FRAME_HEADER);
      frameHeader(header, 0, part.length, DATA, 0, stream.id);
      this.push(header);
      this.push(part);
    }
    if (stream.trailers) {
      const trailers = stream.trailers;
      stream.trailers = null;
      this.pushHeaderBlock(stream.id, trailers, true);
      this.localEnd(stream);
    }
  }

  /** Windows opened: send what waited, in order, then tell writers they may go on. */
  private unblock(): void {
    if (!this.blocked.length) return;
    const waiting = this.blocked;
    this.blocked = [];
    for (const s of waiting) if (!s.closed) this.sendQueued(s);
    if (!this.sock.writableNeedDrain) for (const s of waiting) if (!s.closed && !s.queue.length) s.ondrain?.();
  }

  private drained(): void {
    for (const s of this.streams.values()) if (!s.queue.length) s.ondrain?.();
  }

  /** skiffd's side of a stream is all sent: it closes now, or when the client ends its side. */
  private localEnd(stream: H2Stream): void {
    if (stream.remoteEnded) this.closeStream(stream);
    else {
      // The client is still sending a request that is answered already: stop it, as a
      // gRPC server does, with RST_STREAM NO_ERROR (RFC 9113, 8.1).
      this.push(frame(RST_STREAM, 0, stream.id, u32(H2Error.NO_ERROR)));
      this.closeStream(stream);
    }
  }

  resetStream(stream: H2Stream, code: number): void {
    if (stream.closed) return;
    this.push(frame(RST_STREAM, 0, stream.id, u32(code)));
    this.closeStream(stream);
  }

  private closeStream(stream: H2Stream): void {
    if (stream.closed) return;
    stream.closed = true;
    this.streams.delete(stream.id);
    if (stream.queuedBytes) {
      const i = this.blocked.indexOf(stream);
      if (i >= 0) this.blocked.splice(i, 1);
    }
    stream.onclose?.();
    if (this.goingAway && !this.streams.size) this.end();
  }

  windowUpdate(id: number, increment: number): void {
    this.push(frame(WINDOW_UPDATE, 0, id, u32(increment)));
  }

  /** Queue bytes for the socket; they go out together at the end of this turn. */
  private push(b: Buffer): void {
    if (this.closed) return;
    this.out.push(b);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(flush, this);
    }
  }

  /** Write what this turn queued. */
  flush(): void {
    this.flushScheduled = false;
    const out = this.out;
    if (!out.length || this.closed) return;
    this.out = [];
    let bytes = 0;
    for (const b of out) bytes += b.length;
    if (out.length === 1 || bytes <= COPY_AT_MOST) this.sock.write(out.length === 1 ? out[0] : Buffer.concat(out, bytes));
    else {
      // Large DATA: one writev of the pieces, not a copy.
      this.sock.cork();
      for (const b of out) this.sock.write(b);
      this.sock.uncork();
    }
  }

  // --- Ending ------------------------------------------------------------------------

  /** A protocol error: GOAWAY with `code`, then the connection ends. */
  private fail(code: number, message: string): void {
    this.onError(new Error(`HTTP/2 protocol error: ${message}`));
    this.push(frame(GOAWAY, 0, 0, Buffer.concat([u32(this.lastStream), u32(code), Buffer.from(message.split('\n')[0].slice(0, 256))])));
    this.end();
  }

  /** Graceful close: GOAWAY, the streams under way finish, then the connection ends. */
  close(): void {
    if (this.closed || this.goingAway) return;
    this.goingAway = true;
    this.push(frame(GOAWAY, 0, 0, Buffer.concat([u32(this.lastStream), u32(H2Error.NO_ERROR)])));
    if (!this.streams.size) this.end();
  }

  /** Resolves once the connection is gone. */
  whenClosed(): Promise<void> {
    return this.closed ? Promise.resolve() : new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  /** Flush, then end the socket; the streams still open close. */
  private end(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.sock.end();
    this.closeAll();
  }

  /** Cut the connection at once. */
  destroy(): void {
    if (!this.closed) {
      this.closed = true;
      this.out = [];
    }
    this.sock.destroy();
    this.closeAll();
  }

  private closeAll(): void {
    for (const s of [...this.streams.values()]) this.closeStream(s);
    for (const w of this.closeWaiters.splice(0)) w();
  }
}

function flush(session: H2Session): void {
  session.flush();
}
