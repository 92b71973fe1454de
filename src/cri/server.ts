// The CRI gRPC server: RuntimeService and ImageService on a unix socket, under both
// runtime.v1 and runtime.v1alpha2. Every call passes one wrapper that times it, logs it
// at debug, and maps thrown errors to gRPC status codes, so handlers hold no plumbing.
// A method without a handler answers UNIMPLEMENTED. The gRPC transport is skiffd's own, on
// Node's HTTP/2 (grpc_server.ts says why).
import { promises as fsp } from 'fs';
import * as net from 'net';
import * as path from 'path';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { GrpcCode, SkiffError, Unimplemented, grpcCode } from '../errors';
import { Logger } from '../log';
import type { ImageServiceRpc, RuntimeServiceRpc } from './gen/cri';
import { GrpcServer, Route, Status } from './grpc_server';
import { CRI_PACKAGES, CriPackage, CriServiceName, Encoded, keptDecoder, methodNames, serviceDefinition } from './proto';

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

export interface CriHandlers {
  runtime: Handlers<RuntimeServiceRpc>;
  image: Handlers<ImageServiceRpc>;
}

/** Observes every call: metrics hook in here. */
export type CallObserver = (method: string, code: GrpcCode | 0, seconds: number) => void;

function toStatus(e: unknown): Status {
  return { code: grpcCode(e), details: e instanceof Error ? e.message : String(e) };
}

/** The calls kubelet makes with the same request again and again (its PLEG relist), whose
 * replies are kept: their requests are decoded once (keptDecoder; their handlers take them
 * read-only). */
const KEPT_REQUESTS = new Set(['ListPodSandbox', 'ListContainers', 'ListImages']);

/** A method of a service served next to the CRI (see addExtraService). */
export type ExtraMethod =
  | { kind: 'unary'; fn: (req: unknown, ctx: CallContext) => Promise<unknown> }
  | { kind: 'clientStream'; fn: (messages: AsyncIterable<unknown>, ctx: CallContext) => Promise<unknown> };

export class CriServer {
  private readonly server = new GrpcServer({
    maxReceiveBytes: 16 * 1024 * 1024,
    maxSendBytes: 64 * 1024 * 1024,
    status: toStatus,
    finished: (route, started, err) => this.finish(route.method, started, err),
    connectionError: (e) => this.log.warn('dropped a CRI connection', { error: e.message }),
  });

  private readonly listeners: net.Server[] = [];

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
    for (const method of methodNames(service)) {
      const fn = handlers[method] as Route['run'] | undefined;
      const m = def[method];
      this.server.add(m.path, {
        def: KEPT_REQUESTS.has(method) ? { ...m, requestDeserialize: keptDecoder(m.requestDeserialize) } : m,
        kind: def[method].responseStream ? 'serverStream' : 'unary',
        method,
        pkg,
        run: fn ?? (() => Promise.reject(new Unimplemented(`${method} is not implemented by skiff yet`))),
      });
    }
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

  /**
   * Serve another service on the same socket (skiff's own API for its CLI), its unary and
   * client-streaming methods through the same timing, logging and error mapping.
   */
  addExtraService(def: ServiceDefinition, methods: Record<string, ExtraMethod>): void {
    for (const [method, m] of Object.entries(methods))
      this.server.add(def[method].path, { def: def[method], kind: m.kind, method, pkg: 'runtime.v1', run: m.fn as Route['run'] });
  }

/** Listen on a unix socket; a stale socket file from an earlier run is replaced. */
  async listen(socketPath: string, mode: number): Promise<void> {
    await fsp.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o711 });
    await fsp.rm(socketPath, { force: true });
    const listener = net.createServer((sock) => this.server.accept(sock));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(socketPath, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.listeners.push(listener);
    await fsp.chmod(socketPath, mode);
  }

  /** Stop accepting calls; calls under way get `graceMs` to finish. */
  async close(graceMs = 2000): Promise<void> {
    for (const listener of this.listeners) listener.close();
    await this.server.close(graceMs);
  }
}
