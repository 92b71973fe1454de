// The CRI gRPC server: RuntimeService and ImageService on a unix socket, under both
// runtime.v1 and runtime.v1alpha2. Every call passes one wrapper that times it, logs it
// at debug, and maps thrown errors to gRPC status codes, so handlers hold no plumbing.
// A method without a handler answers UNIMPLEMENTED.
import { promises as fsp } from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import { GrpcCode, SkiffError, Unimplemented, grpcCode } from '../errors';
import { Logger } from '../log';
import { acceptConnection } from './authority';
import type { ImageServiceRpc, RuntimeServiceRpc } from './gen/cri';
import { CRI_PACKAGES, CriPackage, CriServiceName, Encoded, methodNames, serviceDefinition } from './proto';

/** What a handler may return: any subset of the response message. */
export type Reply<T> = T extends (infer U)[]
  ? Reply<U>[]
  : T extends Uint8Array
    ? T
    : T extends object
      ? { [K in keyof T]?: Reply<T[K]> | null }
      : T;

export interface CallContext {
  method: string;
  /** The CRI package the call came in on: runtime.v1 or runtime.v1alpha2. */
  pkg: CriPackage;
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
}

export interface StreamContext<Res> extends CallContext {
  /** false: the client is not keeping up; wait for drained() before writing more. */
  write(msg: Reply<Res>): boolean;
  drained(): Promise<void>;
}

/** CRI handlers; a unary one may answer with its reply already encoded (EncodedItems). */
export type Handlers<R extends { [K in keyof R]: { req: unknown; res: unknown; stream: boolean } }> = {
  [M in keyof R]?: R[M]['stream'] extends true
    ? (req: R[M]['req'], ctx: StreamContext<R[M]['res']>) => Promise<void>
    : (req: R[M]['req'], ctx: CallContext) => Promise<Reply<R[M]['res']> | Encoded>;
};

type UnaryHandler = ((req: unknown, ctx: CallContext) => Promise<unknown>) | undefined;
type StreamHandler = ((req: unknown, ctx: StreamContext<unknown>) => Promise<void>) | undefined;

export interface CriHandlers {
  runtime: Handlers<RuntimeServiceRpc>;
  image: Handlers<ImageServiceRpc>;
}

/** Observes every call: metrics hook in here. */
export type CallObserver = (method: string, code: GrpcCode | 0, seconds: number) => void;

function toStatus(e: unknown): Partial<grpc.StatusObject> {
  const code = grpcCode(e);
  const message = e instanceof Error ? e.message : String(e);
  return { code: code as number as grpc.status, details: message };
}

/** A grpc-js call that the client can cancel: it says so in `cancelled` and with an event. */
interface CancellableCall {
  readonly cancelled: boolean;
  once(event: 'cancelled', l: () => void): unknown;
}

/**
 * A unary call's context, whose signal is made when a handler first reads it: most calls
 * (Version, Status, the lists) never do, and an AbortController and a listener on the
 * call are a good part of what an empty call costs skiffd.
 */
class UnaryContext implements CallContext {
  private abort: AbortController | undefined;

  constructor(
    readonly method: string,
    readonly pkg: CriPackage,
    private readonly call: CancellableCall,
  ) {}

  get signal(): AbortSignal {
    if (!this.abort) {
      const abort = (this.abort = new AbortController());
      const cancel = () => abort.abort(new Error(`${this.method} cancelled by the client`));
      if (this.call.cancelled) cancel();
      else this.call.once('cancelled', cancel);
    }
    return this.abort.signal;
  }
}

/** A method of a service served next to the CRI (see addExtraService). */
export type ExtraMethod =
  | { kind: 'unary'; fn: (req: unknown, ctx: CallContext) => Promise<unknown> }
  | { kind: 'clientStream'; fn: (messages: AsyncIterable<unknown>, ctx: CallContext) => Promise<unknown> };

export class CriServer {
  private readonly server = new grpc.Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    // Channelz's per-call counters and timestamps are read by nothing here.
    'grpc.enable_channelz': 0,
  });

  private readonly listeners: { listener: net.Server; injector: grpc.ConnectionInjector }[] = [];

  constructor(
    handlers: CriHandlers,
    private readonly log: Logger,
    private readonly observe: CallObserver = () => {},
  ) {
    for (const pkg of CRI_PACKAGES) {
      this.add(pkg, 'RuntimeService', handlers.runtime as Record<string, unknown>);
      this.add(pkg, 'ImageService', handlers.image as Record<string, unknown>);
    }
  }

  private add(pkg: CriPackage, service: CriServiceName, handlers: Record<string, unknown>): void {
    const def = serviceDefinition(pkg, service);
    const impl: grpc.UntypedServiceImplementation = {};
    for (const name of methodNames(service)) {
      const fn = handlers[name] as ((req: unknown, ctx: never) => Promise<unknown>) | undefined;
      impl[name] = def[name].responseStream ? this.wrapStream(pkg, name, fn as StreamHandler) : this.wrapUnary(pkg, name, fn as UnaryHandler);
    }
    this.server.addService(def, impl);
  }

  private finish(method: string, started: bigint, err: unknown): void {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const code = err === undefined ? 0 : grpcCode(err);
    this.observe(method, code, seconds);
    if (err === undefined) {
      if (this.log.enabled('debug')) this.log.debug('cri call', { method, ms: +(seconds * 1e3).toFixed(3) });
    }
    else if (err instanceof SkiffError) this.log.debug('cri call failed', { method, ms: +(seconds * 1e3).toFixed(3), code: GrpcCode[code], error: err.message });
    else this.log.error('cri call failed', { method, ms: +(seconds * 1e3).toFixed(3), error: err instanceof Error ? err.stack : String(err) });
  }

  private unimplemented(method: string): Error {
    return new Unimplemented(`${method} is not implemented by skiff yet`);
  }

  /** Run a call that answers once, timed, logged and with its error mapped. */
  private answer(method: string, pkg: CriPackage, call: CancellableCall, run: (ctx: CallContext) => Promise<unknown>, callback: grpc.sendUnaryData<unknown>): void {
    const started = process.hrtime.bigint();
    const ctx = new UnaryContext(method, pkg, call);
    Promise.resolve()
      .then(() => run(ctx))
      .then(
        (res) => {
          this.finish(method, started, undefined);
          callback(null, res ?? {});
        },
        (err: unknown) => {
          this.finish(method, started, err);
          callback(toStatus(err));
        },
      );
  }

  private wrapUnary(pkg: CriPackage, method: string, fn?: (req: unknown, ctx: CallContext) => Promise<unknown>): grpc.handleUnaryCall<unknown, unknown> {
    return (call, callback) =>
      this.answer(method, pkg, call, (ctx) => (fn ? fn(call.request, ctx) : Promise.reject(this.unimplemented(method))), callback);
  }

  private wrapStream(pkg: CriPackage, method: string, fn?: (req: unknown, ctx: StreamContext<unknown>) => Promise<void>): grpc.handleServerStreamingCall<unknown, unknown> {
    return (call) => {
      const started = process.hrtime.bigint();
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort(new Error(`${method} cancelled by the client`)));
      const ctx: StreamContext<unknown> = {
        method,
        pkg,
        signal: abort.signal,
        write: (m) => call.write(m),
        drained: () => new Promise((resolve) => call.once('drain', resolve)),
      };
      const run = fn ? Promise.resolve().then(() => fn(call.request, ctx)) : Promise.reject(this.unimplemented(method));
      run.then(
        () => {
          this.finish(method, started, undefined);
          call.end();
        },
        (err: unknown) => {
          this.finish(method, started, err);
          if (!abort.signal.aborted) call.destroy(Object.assign(new Error(err instanceof Error ? err.message : String(err)), toStatus(err)));
        },
      );
    };
  }

  /**
   * Serve another service on the same socket (skiff's own API for its CLI), its unary and
   * client-streaming methods through the same timing, logging and error mapping.
   */
  addExtraService(def: grpc.ServiceDefinition, methods: Record<string, ExtraMethod>): void {
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [method, m] of Object.entries(methods)) {
      impl[method] =
        m.kind === 'clientStream'
          ? ((call, callback) => this.answer(method, 'runtime.v1', call, (ctx) => m.fn(call, ctx), callback)) as grpc.handleClientStreamingCall<unknown, unknown>
          : ((call, callback) => this.answer(method, 'runtime.v1', call, (ctx) => m.fn(call.request, ctx), callback)) as grpc.handleUnaryCall<unknown, unknown>;
    }
    this.server.addService(def, impl);
  }

  /** Listen on a unix socket; a stale socket file from an earlier run is replaced. */
  async listen(socketPath: string, mode: number): Promise<void> {
    await fsp.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o711 });
    await fsp.rm(socketPath, { force: true });
    // skiffd accepts the connections itself, to mend the socket-path :authority older
    // grpc-go clients (kubelet <= 1.25) send (authority.ts).
    const injector = this.server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const listener = net.createServer((sock) =>
      acceptConnection(sock, (conn) => injector.injectConnection(conn), (e) => this.log.warn('dropped a CRI connection', { error: e.message })),
    );
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(socketPath, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.listeners.push({ listener, injector });
    await fsp.chmod(socketPath, mode);
  }

  /** Stop accepting calls; calls under way get `graceMs` to finish. */
  async close(graceMs = 2000): Promise<void> {
    for (const { listener, injector } of this.listeners) {
      listener.close();
      injector.drain(graceMs);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
