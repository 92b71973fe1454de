// gRPC over skiffd's own HTTP/2 (http2/session.ts): the transport under skiffd's CRI
// server. It frames messages (a flag byte and a 4-byte length before each), reads
// `grpc-timeout`, answers with `grpc-status`/`grpc-message` trailers, and serves unary,
// server-streaming and client-streaming methods, identity encoding only.
//
// Why not grpc-js's server: in lite mode (bin/skiffd) V8 interprets everything, and
// grpc-js spends per call a Metadata built from every header, an intercepting call with
// its listener objects, a read queue, a per-call metrics recorder, and promise and tick
// hops between them: callgrind counted 1.27M instructions in skiffd per `Version`, where
// Node's HTTP/2 answering the same round trip costs 0.70M. This file does what a CRI call
// needs of all that; http2/session.ts does the same for Node's HTTP/2 (see there).
import type { Duplex } from 'stream';
import type { MethodDefinition } from '@grpc/grpc-js';
import { GrpcCode } from '../errors';
import { CriPackage, ENCODED, Encoded } from './proto';
import { encodeHeaders } from './http2/hpack';
import { H2Session, H2Stream } from './http2/session';

export type CallKind = 'unary' | 'serverStream' | 'clientStream';

/** A status a call ends with. */
export interface Status {
  code: GrpcCode | 0;
  details: string;
}

/** A method the server answers, at its path (e.g. /runtime.v1.RuntimeService/Version). */
export interface Route {
  def: MethodDefinition<unknown, unknown>;
  kind: CallKind;
  /** The method's name, as the handlers and the call observer know it. */
  method: string;
  /** The CRI package the path names (skiff's own API: runtime.v1). */
  pkg: CriPackage;
  /** unary and serverStream: the request decoded; clientStream: the requests as they come. */
  run(request: unknown, call: GrpcCall): Promise<unknown>;
}

export interface GrpcServerOptions {
  /** Largest request message, in bytes: a larger one fails the call with RESOURCE_EXHAUSTED. */
  maxReceiveBytes: number;
  /** Largest reply message, in bytes: likewise. */
  maxSendBytes: number;
  /** The status a handler's error ends its call with. */
  status(e: unknown): Status;
  /** Every call a route ran, once its handler settled (`error` undefined: it succeeded). */
  finished(route: Route, started: bigint, error: unknown): void;
  /** A connection that ended on a protocol or socket error. */
  connectionError?(e: Error): void;
}

const STATUS_OK = { code: 0, details: 'OK' };
/** The longest a Node timer waits. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const TIMEOUT_UNITS_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** `grpc-message` is percent-encoded (as grpc-js writes it: encodeURI). */
export function encodeMessage(details: string): string {
  try {
    return encodeURI(details);
  } catch {
    return encodeURI(details.replace(/[\ud800-\udfff]/g, '\ufffd')); // a lone surrogate
  }
}

/** A `grpc-timeout` value (1 to 8 digits and a unit) in milliseconds, or undefined when it is not one. */
export function parseTimeout(value: string): number | undefined {
  const digits = value.length - 1;
  const unit = TIMEOUT_UNITS_MS[value[digits]];
  if (digits < 1 || digits > 8 || unit === undefined) return undefined;
  let n = 0;
  for (let i = 0; i < digits; i++) {
    const d = value.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return n * unit;
}

/**
 * The calls that have a deadline, under one timer for the earliest. kubelet gives every
 * call one (2 minutes by default); a Node timer each would make and drop a timer list per
 * call (each has its own duration), where this costs a Set's add and delete.
 */
class Deadlines {
  private readonly calls = new Set<GrpcCall>();
  private timer: NodeJS.Timeout | undefined;
  private firesAt = Infinity;

  add(call: GrpcCall): void {
    this.calls.add(call);
    if (call.deadline < this.firesAt) this.arm(call.deadline);
  }

  delete(call: GrpcCall): void {
    this.calls.delete(call);
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.firesAt = at;
    // At least 1 ms: Date.now() may lag the timers' clock; beyond a Node timer's range it
    // fires early and arms again.
    this.timer = setTimeout(() => this.sweep(), Math.min(MAX_TIMER_MS, Math.max(1, at - Date.now())));
    this.timer.unref();
  }

  private sweep(): void {
    this.timer = undefined;
    this.firesAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const call of this.calls) {
      if (call.deadline <= now) {
        this.calls.delete(call);
        call.expire();
      } else if (call.deadline < next) next = call.deadline;
    }
    if (next < Infinity) this.arm(next);
  }
}

/** A message framed: flag 0 (not compressed), its length, the message. */
function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(message.length + 5);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

const FRAMED = Symbol('skiff.framed');
type FramedEncoded = Encoded & { [FRAMED]?: Buffer };

/**
 * A kept reply (Encoded) framed once: the frame replaces its bytes, which become a view
 * of the frame, so a reply answered again is neither copied nor held twice.
 */
function framedEncoded(e: FramedEncoded): Buffer {
  let f = e[FRAMED];
  if (!f) {
    f = frame(e[ENCODED]);
    e[ENCODED] = f.subarray(5);
    e[FRAMED] = f;
  }
  return f;
}

/**
 * A request's bytes as messages: push what comes, get the messages whole so far. Throws
 * (with the status to answer) on a message over the limit or compressed.
 */
export class MessageReader {
  /** Bytes not yet made into a message, kept as they came: a message split over many
   * DATA frames is joined once, when it is whole, not once per frame. */
  private chunks: Buffer[] = [];
  private size = 0;
  /** Bytes wanted before the next look: a message's prefix, or the whole message. */
  private need = 5;

  constructor(
    private readonly maxBytes: number,
    /** The request's `grpc-encoding`, which a compressed message would be in. */
    private readonly encoding: string | undefined,
  ) {}

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.size += chunk.length;
    const out: Buffer[] = [];
    while (this.size >= this.need) {
      const buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
      if (buf[0] !== 0) throw new StatusError(GrpcCode.UNIMPLEMENTED, `Received message compressed with unsupported encoding "${this.encoding ?? '(none named)'}"`);
      const length = buf.readUInt32BE(1);
      if (length > this.maxBytes) throw new StatusError(GrpcCode.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${this.maxBytes})`);
      if (buf.length < length + 5) {
        this.chunks = [buf];
        this.need = length + 5;
        break;
      }
      out.push(buf.subarray(5, length + 5));
      const rest = buf.subarray(length + 5);
      this.chunks = rest.length ? [rest] : [];
      this.size = rest.length;
      this.need = 5;
    }
    return out;
  }

  /** Whether a message was begun and not finished. */
  partial(): boolean {
    return this.size > 0;
  }
}

/** What MessageReader throws: the status the call fails with. */
export class StatusError extends Error {
  constructor(
    readonly code: GrpcCode,
    message: string,
  ) {
    super(message);
  }

  get status(): Status {
    return { code: this.code, details: this.message };
  }
}

const CONTENT_TYPE: [string, string] = ['content-type', 'application/grpc+proto'];
/** The header blocks every reply sends, encoded once (literals: no connection state). */
const REPLY_HEADERS = encodeHeaders([[':status', '200'], CONTENT_TYPE]);
const OK_TRAILERS = encodeHeaders([['grpc-status', '0'], ['grpc-message', 'OK']]);
const NOT_GRPC = encodeHeaders([[':status', '415']]);

function trailers(s: Status): Buffer {
  return s.code === 0 ? OK_TRAILERS : encodeHeaders([['grpc-status', String(s.code)], ['grpc-message', encodeMessage(s.details)]]);
}

/** Trailers-only: a call answered with its status and nothing else. */
function respondStatus(stream: H2Stream, s: Status): void {
  stream.respond(
    // The encodings skiffd reads, for a client that sent another (gRPC's compression spec).
    encodeHeaders([[':status', '200'], CONTENT_TYPE, ['grpc-status', String(s.code)], ['grpc-message', encodeMessage(s.details)], ['grpc-accept-encoding', 'identity']]),
    true,
  );
}

/** One call, as its handler sees it (and as skiffd's CallContext and StreamContext). */
export class GrpcCall {
  private abort: AbortController | undefined;
  /** When the call's deadline passes (Date.now() time), Infinity for none. */
  deadline = Infinity;
  private headersSent = false;
  /** The status went out (or the stream is gone): nothing more is written. */
  private ended = false;
  readonly started = process.hrtime.bigint();

  /** Run when the stream closes before the call ended (the client cancelled or left). */
  private cancelled: (() => void) | null = null;

  constructor(
    private readonly stream: H2Stream,
    private readonly route: Route,
    private readonly opts: GrpcServerOptions,
    private readonly deadlines: Deadlines,
  ) {
    stream.onclose = () => this.closed();
  }

  private closed(): void {
    if (this.ended) return;
    this.ended = true;
    this.clearDeadline();
    this.abort?.abort(new Error(`${this.route.method} cancelled by the client`));
    this.cancelled?.();
  }

  /** `f` runs if the client cancels the call (or leaves) before it ended. */
  onCancel(f: () => void): void {
    this.cancelled = f;
  }

  get method(): string {
    return this.route.method;
  }

  get pkg(): CriPackage {
    return this.route.pkg;
  }

  /**
   * Aborted when the client cancels or the deadline passes. Made when first read: most
   * calls never read it, and a controller and a listener are a good part of what an
   * empty call costs.
   */
  get signal(): AbortSignal {
    if (!this.abort) {
      const abort = (this.abort = new AbortController());
      if (this.ended || this.stream.closed) abort.abort(new Error(`${this.route.method} cancelled by the client`));
    }
    return this.abort.signal;
  }

  /** Arm the deadline from a `grpc-timeout` header. */
  expireIn(header: string): boolean {
    const ms = parseTimeout(header);
    if (ms === undefined) {
      this.end({ code: GrpcCode.INTERNAL, details: `Invalid grpc-timeout value "${header}"` });
      return false;
    }
    this.deadline = Date.now() + ms;
    this.deadlines.add(this);
    return true;
  }

  /** The deadline passed (Deadlines). */
  expire(): void {
    this.deadline = Infinity;
    if (this.ended) return;
    this.end({ code: GrpcCode.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
    this.abort?.abort(new Error(`${this.route.method}: deadline exceeded`));
  }

  /** Whether the call is over (its status sent, or the client gone). */
  private gone(): boolean {
    return this.ended;
  }

  private framed(msg: unknown): Buffer | undefined {
    let f: Buffer;
    try {
      f = (msg as Partial<Encoded>)[ENCODED] ? framedEncoded(msg as Encoded) : frame(this.route.def.responseSerialize(msg));
    } catch (e) {
      this.end({ code: GrpcCode.INTERNAL, details: `${this.route.method}: could not encode the reply: ${(e as Error).message}` });
      return undefined;
    }
    if (f.length - 5 > this.opts.maxSendBytes) {
      this.end({ code: GrpcCode.RESOURCE_EXHAUSTED, details: `Sent message larger than max (${f.length - 5} vs. ${this.opts.maxSendBytes})` });
      return undefined;
    }
    return f;
  }

  private sendHeaders(): void {
    this.headersSent = true;
    this.stream.respond(REPLY_HEADERS, false);
  }

  /** A unary or client-streaming call's reply, then OK. */
  reply(msg: unknown): void {
    if (this.gone()) return;
    const f = this.framed(msg);
    if (!f) return;
    this.clearDeadline();
    this.ended = true;
    this.stream.reply(REPLY_HEADERS, f, OK_TRAILERS);
  }

  /** A server-streaming call's next message; false: wait for drained() before writing more. */
  write(msg: unknown): boolean {
    if (this.gone()) return false;
    const f = this.framed(msg);
    if (!f) return false;
    if (!this.headersSent) this.sendHeaders();
    return this.stream.write(f);
  }

  drained(): Promise<void> {
    return new Promise((resolve) => {
      this.stream.ondrain = () => {
        this.stream.ondrain = null;
        resolve();
      };
    });
  }

  /** End the call with `s` (trailers after what was sent, or trailers only). */
  end(s: Status): void {
    if (this.gone()) return;
    this.clearDeadline();
    this.ended = true;
    if (!this.headersSent) {
      respondStatus(this.stream, s);
      return;
    }
    this.stream.end(trailers(s));
  }

  private clearDeadline(): void {
    if (this.deadline !== Infinity) this.deadlines.delete(this);
    this.deadline = Infinity;
  }

  /** Run the route's handler on `request` (a message or the requests' iterable). */
  run(request: unknown): void {
    let p: Promise<unknown>;
    try {
      p = this.route.run(request, this);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (res) => {
        this.opts.finished(this.route, this.started, undefined);
        if (this.route.kind === 'serverStream') this.end(STATUS_OK);
        else this.reply(res ?? {});
      },
      (err: unknown) => {
        this.opts.finished(this.route, this.started, err);
        this.end(this.opts.status(err));
      },
    );
  }

  /** A request that cannot be decoded fails the call. */
  decode(message: Buffer): { ok: true; value: unknown } | { ok: false } {
    try {
      return { ok: true, value: this.route.def.requestDeserialize(message) };
    } catch (e) {
      this.end({ code: GrpcCode.INTERNAL, details: `${this.route.method}: could not decode the request: ${(e as Error).message}` });
      return { ok: false };
    }
  }
}

/**
 * The gRPC server: routes by path, one HTTP/2 session for every connection handed to it
 * (skiffd accepts them itself).
 */
export class GrpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly sessions = new Set<H2Session>();
  private readonly deadlines = new Deadlines();

  constructor(private readonly opts: GrpcServerOptions) {}

  add(path: string, route: Route): void {
    this.routes.set(path, route);
  }

  /** Serve a connection (a socket, or a stream in front of one). */
  accept(conn: Duplex): void {
    const session = new H2Session(
      conn,
      (stream) => this.onStream(stream),
      (e) => this.opts.connectionError?.(e),
    );
    this.sessions.add(session);
    void session.whenClosed().then(() => this.sessions.delete(session));
  }

  private onStream(stream: H2Stream): void {
    const headers = stream.headers;
    const type = headers['content-type'];
    if (type === undefined || !type.startsWith('application/grpc')) {
      stream.respond(NOT_GRPC, true);
      return;
    }
    // Any :authority is taken, the socket path older grpc-go clients (kubelet <= 1.25)
    // send included: there is no host to route by on a unix socket.
    const path = headers[':path'] ?? '';
    const route = this.routes.get(path);
    if (!route) {
      respondStatus(stream, { code: GrpcCode.UNIMPLEMENTED, details: `The server does not implement the method ${path}` });
      return;
    }
    const call = new GrpcCall(stream, route, this.opts, this.deadlines);
    const timeout = headers['grpc-timeout'];
    if (timeout !== undefined && !call.expireIn(timeout)) return;
    const reader = new MessageReader(this.opts.maxReceiveBytes, headers['grpc-encoding']);
    if (route.kind === 'clientStream') this.readStream(stream, call, reader);
    else this.readOne(stream, call, reader, path);
  }

  /** A unary or server-streaming call: one request message, then the handler. */
  private readOne(stream: H2Stream, call: GrpcCall, reader: MessageReader, path: string): void {
    let message: Buffer | undefined;
    let failed = false;
    stream.ondata = (chunk: Buffer) => {
      // The message is kept whole until it is decoded: the window is given back as it comes.
      stream.consumed(chunk.length);
      if (failed) return;
      try {
        const got = reader.push(chunk);
        if (got.length && (message || got.length > 1)) throw new StatusError(GrpcCode.UNIMPLEMENTED, `Received a second request message for ${path}`);
        if (got.length) message = got[0];
      } catch (e) {
        failed = true;
        call.end((e as StatusError).status);
      }
    };
    stream.onend = () => {
      if (failed) return;
      if (!message || reader.partial()) {
        call.end({ code: GrpcCode.UNIMPLEMENTED, details: `Received no request message for ${path}` });
        return;
      }
      const req = call.decode(message);
      if (req.ok) call.run(req.value);
    };
  }

  /**
   * A client-streaming call: its handler reads the requests as they come, at its pace: the
   * client's window is given back as the handler takes them.
   */
  private readStream(stream: H2Stream, call: GrpcCall, reader: MessageReader): void {
    const queue: unknown[] = [];
    /** Bytes read and not given back to the window: those of requests the handler has not taken. */
    let held = 0;
    let ended = false;
    let failure: Error | null = null;
    let wake: (() => void) | null = null;
    const woken = () => {
      wake?.();
      wake = null;
    };
    const fail = (e: Error) => {
      failure ??= e;
      woken();
    };
    stream.ondata = (chunk: Buffer) => {
      if (failure) return;
      held += chunk.length;
      try {
        for (const m of reader.push(chunk)) {
          const req = call.decode(m);
          if (!req.ok) return fail(new Error('the request could not be decoded'));
          queue.push(req.value);
        }
      } catch (e) {
        call.end((e as StatusError).status);
        return fail(e as Error);
      }
      // A message still coming (larger than a window, perhaps) must not wait on the handler.
      if (!queue.length) giveBack();
      woken();
    };
    const giveBack = () => {
      stream.consumed(held);
      held = 0;
    };
    stream.onend = () => {
      ended = true;
      woken();
    };
    call.onCancel(() => fail(new Error(`${call.method} cancelled by the client`)));
    async function* requests(): AsyncGenerator<unknown> {
      for (;;) {
        if (queue.length) {
          const next = queue.shift();
          if (!queue.length) giveBack();
          yield next;
          continue;
        }
        if (failure) throw failure;
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    }
    call.run(requests());
  }

  /** Stop serving: sessions finish their calls for `graceMs`, then are cut. */
  async close(graceMs: number): Promise<void> {
    if (!this.sessions.size) return;
    const closed = Promise.all(
      [...this.sessions].map((s) => {
        s.close();
        return s.whenClosed();
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    const cut = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const s of this.sessions) s.destroy();
        resolve();
      }, graceMs);
    });
    await Promise.race([closed, cut]);
    clearTimeout(timer);
  }
}
