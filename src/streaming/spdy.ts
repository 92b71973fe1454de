// SPDY/3.1 framing and sessions, as Kubernetes streaming uses them (client-go and
// kubelet speak it through moby/spdystream): control and data frames, header blocks
// compressed with one stateful zlib context per direction and the SPDY/3 dictionary,
// a SYN_REPLY for streams, half-closes with FIN, PING answers, GOAWAY, and windows:
// WINDOW_UPDATEs are sent for what we consume; our sending honours the peer's
// windows only once the peer shows it does flow control (spdystream never sends
// WINDOW_UPDATE, and a window enforced against it would stall after 64 KiB).
import { EventEmitter } from 'events';
import type { Duplex } from 'stream';
import * as zlib from 'zlib';
import { SPDY3_DICTIONARY } from './spdy_dictionary';

export const VERSION = 3;
export enum FrameType {
  SYN_STREAM = 1,
  SYN_REPLY = 2,
  RST_STREAM = 3,
  SETTINGS = 4,
  PING = 6,
  GOAWAY = 7,
  HEADERS = 8,
  WINDOW_UPDATE = 9,
}
export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;
export const SETTINGS_INITIAL_WINDOW_SIZE = 7;
export const RST_PROTOCOL_ERROR = 1;
export const RST_CANCEL = 5;
const DEFAULT_WINDOW = 64 * 1024;
const MAX_FRAME_PAYLOAD = 0xffffff;
const MAX_DATA_CHUNK = 32 * 1024;

export type Frame =
  | { control: false; streamId: number; flags: number; data: Buffer }
  | { control: true; type: number; flags: number; payload: Buffer };

/** A control frame: C bit, version 3, type; flags and 24-bit length; payload. */
export function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(0x8000 | VERSION, 0);
  h.writeUInt16BE(type, 2);
  h.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** A data frame: 31-bit stream id, flags and 24-bit length, data. */
export function dataFrame(streamId: number, flags: number, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(streamId & 0x7fffffff, 0);
  h.writeUInt32BE(((flags & 0xff) << 24) | data.length, 4);
  return Buffer.concat([h, data]);
}

export const u32 = (...vals: number[]) => {
  const b = Buffer.alloc(4 * vals.length);
  vals.forEach((v, i) => b.writeUInt32BE(v >>> 0, 4 * i));
  return b;
};

export const pingFrame = (id: number) => controlFrame(FrameType.PING, 0, u32(id));
export const rstFrame = (streamId: number, status: number) => controlFrame(FrameType.RST_STREAM, 0, u32(streamId & 0x7fffffff, status));
export const windowUpdateFrame = (streamId: number, delta: number) => controlFrame(FrameType.WINDOW_UPDATE, 0, u32(streamId & 0x7fffffff, delta & 0x7fffffff));
export const goawayFrame = (lastStreamId: number, status: number) => controlFrame(FrameType.GOAWAY, 0, u32(lastStreamId & 0x7fffffff, status));
export function settingsFrame(entries: { id: number; value: number; flags?: number }[]): Buffer {
  return controlFrame(FrameType.SETTINGS, 0, Buffer.concat([u32(entries.length), ...entries.map((e) => u32((((e.flags ?? 0) & 0xff) << 24) | (e.id & 0xffffff), e.value))]));
}

/** The uncompressed header block: pair count, then length-prefixed names and values. */
export function encodeHeaderBlock(headers: Record<string, string>): Buffer {
  const parts: Buffer[] = [u32(Object.keys(headers).length)];
  for (const [k, v] of Object.entries(headers)) {
    const name = Buffer.from(k.toLowerCase(), 'utf8');
    const value = Buffer.from(v, 'utf8');
    parts.push(u32(name.length), name, u32(value.length), value);
  }
  return Buffer.concat(parts);
}

export function decodeHeaderBlock(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  const need = (n: number) => {
    if (off + n > b.length) throw new Error('truncated SPDY header block');
  };
  need(4);
  const n = b.readUInt32BE(off);
  off += 4;
  for (let i = 0; i < n; i++) {
    need(4);
    const nl = b.readUInt32BE(off);
    off += 4;
    need(nl);
    const name = b.toString('utf8', off, off + nl);
    off += nl;
    need(4);
    const vl = b.readUInt32BE(off);
    off += 4;
    need(vl);
    out[name] = b.toString('utf8', off, off + vl);
    off += vl;
  }
  return out;
}

/** zlib's checksum; a dictionary is named by it in the stream header. */
export function adler32(b: Buffer): number {
  let a = 1;
  let s = 0;
  for (const x of b) {
    a = (a + x) % 65521;
    s = (s + a) % 65521;
  }
  return ((s << 16) | a) >>> 0;
}

/**
 * One direction's header compression context: a single zlib stream (header with the
 * dictionary's id once, then data) over all header blocks of the session. Blocks go
 * out as stored deflate blocks ended like a SYNC_FLUSH, readable by any inflater
 * holding the dictionary, and made synchronously so frames keep their order.
 */
export class HeaderCompressor {
  private started = false;
  compress(headers: Record<string, string>): Buffer {
    const raw = encodeHeaderBlock(headers);
    const parts: Buffer[] = [];
    if (!this.started) {
      this.started = true;
      // CMF 0x78 (deflate, 32K window); FLG with FDICT, FCHECK making CMF*256+FLG % 31 == 0.
      const flg = 0x20 + (31 - ((0x78 * 256 + 0x20) % 31));
      parts.push(Buffer.from([0x78, flg]), u32(adler32(SPDY3_DICTIONARY)));
    }
    for (let off = 0; off < raw.length || off === 0; off += 0xffff) {
      const chunk = raw.subarray(off, off + 0xffff);
      const h = Buffer.alloc(5);
      h[0] = 0x00; // BFINAL 0, BTYPE 00 (stored), padded to the byte
      h.writeUInt16LE(chunk.length, 1);
      h.writeUInt16LE(~chunk.length & 0xffff, 3);
      parts.push(h, chunk);
      if (raw.length === 0) break;
    }
    // The empty stored block a SYNC_FLUSH ends with: inflaters (Go's among them) hand
    // out what they hold when they meet it, so the block is readable at once.
    parts.push(Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]));
    return Buffer.concat(parts);
  }
}

/**
 * The other direction: the peer's zlib stream, inflated as a whole up to the newest
 * block (with a SYNC_FLUSH finish) and cut after what earlier blocks gave. Header
 * blocks are small and few per session, so re-inflating stays cheap and synchronous.
 */
export class HeaderDecompressor {
  private input: Buffer[] = [];
  private inputLen = 0;
  private outLen = 0;
  decompress(block: Buffer): Record<string, string> {
    this.input.push(block);
    this.inputLen += block.length;
    if (this.inputLen > 4 * 1024 * 1024) throw new Error('SPDY header compression context over 4 MiB');
    const all = zlib.inflateSync(Buffer.concat(this.input, this.inputLen), { dictionary: SPDY3_DICTIONARY, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const fresh = all.subarray(this.outLen);
    this.outLen = all.length;
    return decodeHeaderBlock(fresh);
  }
}

/** Splits a byte stream into frames, whatever the chunking. */
export class FrameParser {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Frame[] = [];
    while (this.buf.length >= 8) {
      const len = this.buf.readUInt32BE(4) & 0xffffff;
      if (this.buf.length < 8 + len) break;
      const flags = this.buf[4];
      const body = this.buf.subarray(8, 8 + len);
      if (this.buf[0] & 0x80) out.push({ control: true, type: this.buf.readUInt16BE(2), flags, payload: body });
      else out.push({ control: false, streamId: this.buf.readUInt32BE(0) & 0x7fffffff, flags, data: body });
      this.buf = this.buf.subarray(8 + len);
    }
    return out;
  }
}

export interface SpdyStreamEvents {
  data: (d: Buffer) => void;
  end: () => void;
  reset: (status: number) => void;
  reply: (headers: Record<string, string>) => void;
}

export declare interface SpdyStream {
  on<E extends keyof SpdyStreamEvents>(event: E, listener: SpdyStreamEvents[E]): this;
  emit<E extends keyof SpdyStreamEvents>(event: E, ...args: Parameters<SpdyStreamEvents[E]>): boolean;
}

/** One stream of a session: headers from its SYN_STREAM, incoming data as events. */
export class SpdyStream extends EventEmitter {
  localClosed = false;
  remoteClosed = false;
  replied = false;
  sendWindow: number;
  private pending: { data: Buffer; fin: boolean }[] = [];

  constructor(
    readonly session: SpdySession,
    readonly id: number,
    readonly headers: Record<string, string>,
  ) {
    super();
    this.sendWindow = session.peerInitialWindow;
  }

  reply(headers: Record<string, string>, fin = false): void {
    if (this.replied) return;
    this.replied = true;
    this.session.sendControl(FrameType.SYN_REPLY, fin ? FLAG_FIN : 0, Buffer.concat([u32(this.id), this.session.compressHeaders(headers)]));
    if (fin) this.localClosed = true;
  }

  /** Queue data; false once the peer's window holds some back. */
  write(data: Buffer): boolean {
    if (this.localClosed) return false;
    for (let off = 0; off < data.length; off += MAX_DATA_CHUNK) this.pending.push({ data: data.subarray(off, off + MAX_DATA_CHUNK), fin: false });
    return this.flush();
  }

  /** Half-close our side (DATA with FIN). */
  end(): void {
    if (this.localClosed) return;
    this.pending.push({ data: Buffer.alloc(0), fin: true });
    this.flush();
  }

  reset(status = RST_CANCEL): void {
    if (this.localClosed && this.remoteClosed) return;
    this.session.send(rstFrame(this.id, status));
    this.localClosed = this.remoteClosed = true;
    this.session.forget(this.id);
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  private drainWaiters: (() => void)[] = [];

  /** Resolves when all queued data has been sent (the peer's window allowing). */
  drained(): Promise<void> {
    if (!this.hasPending) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  /** Send what the windows allow; the rest waits for WINDOW_UPDATE. */
  flush(): boolean {
    const sent = this.flushQueue();
    if (!this.hasPending) for (const w of this.drainWaiters.splice(0)) w();
    this.session.endWhenFlushed();
    return sent;
  }

  private flushQueue(): boolean {
    const s = this.session;
    while (this.pending.length) {
      const p = this.pending[0];
      if (s.flowControlled && p.data.length > 0) {
        const room = Math.min(this.sendWindow, s.sessionSendWindow);
        if (room <= 0) return false;
        if (p.data.length > room) {
          this.pending[0] = { data: p.data.subarray(room), fin: p.fin };
          this.sendData(p.data.subarray(0, room), false);
          continue;
        }
      }
      this.pending.shift();
      this.sendData(p.data, p.fin);
      if (p.fin) {
        this.localClosed = true;
        if (this.remoteClosed) s.forget(this.id);
      }
    }
    return true;
  }

  private sendData(d: Buffer, fin: boolean): void {
    this.sendWindow -= d.length;
    this.session.sessionSendWindow -= d.length;
    this.session.send(dataFrame(this.id, fin ? FLAG_FIN : 0, d));
  }
}

export interface SpdySessionEvents {
  stream: (s: SpdyStream) => void;
  ping: (id: number) => void;
  goaway: (lastStreamId: number, status: number) => void;
  close: () => void;
}

export declare interface SpdySession {
  on<E extends keyof SpdySessionEvents>(event: E, listener: SpdySessionEvents[E]): this;
  once<E extends keyof SpdySessionEvents>(event: E, listener: SpdySessionEvents[E]): this;
  emit<E extends keyof SpdySessionEvents>(event: E, ...args: Parameters<SpdySessionEvents[E]>): boolean;
}

export class SpdySession extends EventEmitter {
  private readonly parser = new FrameParser();
  private readonly deflate = new HeaderCompressor();
  private readonly inflate = new HeaderDecompressor();
  private readonly streams = new Map<number, SpdyStream>();
  private nextId: number;
  private lastPeerStream = 0;
  private goingAway = false;
  private closed = false;
  /** Bytes received but not yet acknowledged with WINDOW_UPDATE, per stream (0: session). */
  private readonly unacked = new Map<number, number>();
  peerInitialWindow = DEFAULT_WINDOW;
  sessionSendWindow = DEFAULT_WINDOW;
  /** Set once the peer sends WINDOW_UPDATE or SETTINGS: from then on its windows count. */
  flowControlled = false;

  constructor(
    private readonly socket: Duplex,
    opts: { server: boolean },
  ) {
    super();
    this.nextId = opts.server ? 2 : 1;
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => this.onClose());
    socket.on('error', () => socket.destroy());
  }

  compressHeaders(h: Record<string, string>): Buffer {
    return this.deflate.compress(h);
  }

  send(frame: Buffer): void {
    if (!this.closed) this.socket.write(frame);
  }

  sendControl(type: number, flags: number, payload: Buffer): void {
    if (payload.length > MAX_FRAME_PAYLOAD) throw new Error('SPDY control frame too large');
    this.send(controlFrame(type, flags, payload));
  }

  /** Open a stream of our own (clients: exec's error/stdin/... streams). */
  openStream(headers: Record<string, string>, fin = false): SpdyStream {
    const id = this.nextId;
    this.nextId += 2;
    const s = new SpdyStream(this, id, headers);
    this.streams.set(id, s);
    // Stream id, associated-to id 0, priority 0 and slot 0, then the header block.
    this.sendControl(FrameType.SYN_STREAM, fin ? FLAG_FIN : 0, Buffer.concat([u32(id, 0), Buffer.alloc(2), this.compressHeaders(headers)]));
    if (fin) s.localClosed = true;
    return s;
  }

  ping(id: number): void {
    this.send(pingFrame(id));
  }

  goaway(status = 0): void {
    this.goingAway = true;
    this.send(goawayFrame(this.lastPeerStream, status));
  }

  forget(id: number): void {
    this.streams.delete(id);
    this.unacked.delete(id);
  }

  private closing = false;

  /** Close the connection once every stream's queued data (held back by the peer's
   * windows) has gone out; a peer that never opens its window gets 10 s. */
  close(): void {
    if (this.closed || this.closing) return;
    this.closing = true;
    this.endWhenFlushed();
    setTimeout(() => this.socket.destroy(), 10_000).unref();
  }

  /** Called by streams after they flush. */
  endWhenFlushed(): void {
    if (this.closing && [...this.streams.values()].every((s) => !s.hasPending)) this.socket.end();
  }

  private onData(d: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.parser.push(d);
      for (const f of frames) this.onFrame(f);
    } catch {
      // A broken frame or header block: the session cannot go on.
      this.socket.destroy();
    }
  }

  private ack(id: number, n: number): void {
    for (const key of [id, 0]) {
      const v = (this.unacked.get(key) ?? 0) + n;
      // Batch updates: one per half window consumed.
      if (v >= DEFAULT_WINDOW / 2) {
        this.send(windowUpdateFrame(key, v));
        this.unacked.set(key, 0);
      } else this.unacked.set(key, v);
    }
  }

  private onFrame(f: Frame): void {
    if (!f.control) {
      const s = this.streams.get(f.streamId);
      if (!s) {
        this.send(rstFrame(f.streamId, 2)); // INVALID_STREAM
        return;
      }
      if (f.data.length) {
        this.ack(f.streamId, f.data.length);
        s.emit('data', f.data);
      }
      if (f.flags & FLAG_FIN) this.remoteEnd(s);
      return;
    }
    const p = f.payload;
    switch (f.type) {
      case FrameType.SYN_STREAM: {
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const headers = this.inflate.decompress(p.subarray(10));
        if (this.goingAway || this.streams.has(id)) {
          this.send(rstFrame(id, RST_PROTOCOL_ERROR));
          return;
        }
        this.lastPeerStream = Math.max(this.lastPeerStream, id);
        const s = new SpdyStream(this, id, headers);
        this.streams.set(id, s);
        if (f.flags & FLAG_UNIDIRECTIONAL) s.localClosed = true;
        this.emit('stream', s);
        if (f.flags & FLAG_FIN) this.remoteEnd(s);
        return;
      }
      case FrameType.SYN_REPLY: {
        const s = this.streams.get(p.readUInt32BE(0) & 0x7fffffff);
        const headers = this.inflate.decompress(p.subarray(4));
        if (!s) return;
        s.replied = true;
        s.emit('reply', headers);
        if (f.flags & FLAG_FIN) this.remoteEnd(s);
        return;
      }
      case FrameType.HEADERS: {
        const s = this.streams.get(p.readUInt32BE(0) & 0x7fffffff);
        this.inflate.decompress(p.subarray(4)); // keeps the context in step
        if (s && f.flags & FLAG_FIN) this.remoteEnd(s);
        return;
      }
      case FrameType.RST_STREAM: {
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const s = this.streams.get(id);
        if (!s) return;
        s.localClosed = s.remoteClosed = true;
        this.forget(id);
        s.emit('reset', p.readUInt32BE(4));
        s.emit('end');
        return;
      }
      case FrameType.SETTINGS: {
        const n = p.readUInt32BE(0);
        for (let i = 0; i < n; i++) {
          const id = p.readUInt32BE(4 + 8 * i) & 0xffffff;
          const value = p.readUInt32BE(8 + 8 * i);
          if (id === SETTINGS_INITIAL_WINDOW_SIZE) {
            const delta = value - this.peerInitialWindow;
            this.peerInitialWindow = value;
            this.flowControlled = true;
            for (const s of this.streams.values()) s.sendWindow += delta;
          }
        }
        return;
      }
      case FrameType.PING: {
        const id = p.readUInt32BE(0);
        // Odd ids are the client's, even the server's: answer the peer's pings only.
        if ((id % 2 === 1) === (this.nextId % 2 === 0)) this.send(pingFrame(id));
        else this.emit('ping', id);
        return;
      }
      case FrameType.GOAWAY:
        this.goingAway = true;
        this.emit('goaway', p.readUInt32BE(0) & 0x7fffffff, p.length >= 8 ? p.readUInt32BE(4) : 0);
        return;
      case FrameType.WINDOW_UPDATE: {
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const delta = p.readUInt32BE(4) & 0x7fffffff;
        this.flowControlled = true;
        if (id === 0) {
          this.sessionSendWindow += delta;
          for (const s of this.streams.values()) s.flush();
        } else {
          const s = this.streams.get(id);
          if (s) {
            s.sendWindow += delta;
            s.flush();
          }
        }
        return;
      }
      default:
        return; // unknown control frames are ignored, as the spec asks
    }
  }

  private remoteEnd(s: SpdyStream): void {
    if (s.remoteClosed) return;
    s.remoteClosed = true;
    s.emit('end');
    if (s.localClosed) this.forget(s.id);
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) if (!s.remoteClosed) s.emit('end');
    this.streams.clear();
    this.emit('close');
  }
}
