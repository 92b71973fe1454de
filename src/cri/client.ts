// A typed CRI client over a unix socket: what the skiff CLI, the e2e suite and the
// benchmarks use to talk to skiffd (or to any CRI runtime, e.g. containerd).
import * as grpc from '@grpc/grpc-js';
import type { ImageServiceRpc, RuntimeServiceRpc } from './gen/cri';
import { CriPackage, serviceDefinition } from './proto';
import type { Reply } from './server';

export interface CallOptions {
  timeoutMs?: number;
}

/** A failed call: the gRPC status code and the server's message. */
export interface CriCallError extends Error {
  code: grpc.status;
  details: string;
}

type ServerStreaming<T> = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<T>;
/** The methods of a service that answer with a stream. */
type StreamingMethod<R> = { [M in keyof R]: R[M] extends { stream: true } ? M : never }[keyof R];

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export class CriClient {
  private readonly rt: grpc.Client;
  private readonly img: grpc.Client;

  constructor(
    readonly socket: string,
    readonly pkg: CriPackage = 'runtime.v1',
    channelOptions: grpc.ChannelOptions = {},
  ) {
    const address = socket.startsWith('unix:') ? socket : `unix://${socket}`;
    const opts = { 'grpc.max_receive_message_length': 64 * 1024 * 1024, ...channelOptions };
    const Rt = grpc.makeGenericClientConstructor(serviceDefinition(pkg, 'RuntimeService'), 'RuntimeService');
    const Img = grpc.makeGenericClientConstructor(serviceDefinition(pkg, 'ImageService'), 'ImageService');
    this.rt = new Rt(address, grpc.credentials.createInsecure(), opts);
    this.img = new Img(address, grpc.credentials.createInsecure(), opts);
  }

  private unary<T>(client: grpc.Client, method: string, req: unknown, opts: CallOptions): Promise<T> {
    const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
    const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
    return new Promise((resolve, reject) =>
      fn(req, new grpc.Metadata(), { deadline }, (err, res) => (err ? reject(err) : resolve(res as T))),
    );
  }

  runtime<M extends keyof RuntimeServiceRpc>(method: M, req: Reply<RuntimeServiceRpc[M]['req']>, opts: CallOptions = {}): Promise<RuntimeServiceRpc[M]['res']> {
    return this.unary(this.rt, method, req, opts);
  }

  image<M extends keyof ImageServiceRpc>(method: M, req: Reply<ImageServiceRpc[M]['req']>, opts: CallOptions = {}): Promise<ImageServiceRpc[M]['res']> {
    return this.unary(this.img, method, req, opts);
  }

  /** A server-streaming RuntimeService call (GetContainerEvents, the Stream* lists) as
   * its stream; cancel() it to stop. */
  runtimeStream<M extends StreamingMethod<RuntimeServiceRpc>>(method: M, req: Reply<RuntimeServiceRpc[M]['req']>, opts: CallOptions = {}): grpc.ClientReadableStream<RuntimeServiceRpc[M]['res']> {
    return this.serverStream(this.rt, method, req, opts);
  }

  /** A server-streaming ImageService call (StreamImages) as its stream. */
  imageStream<M extends StreamingMethod<ImageServiceRpc>>(method: M, req: Reply<ImageServiceRpc[M]['req']>, opts: CallOptions = {}): grpc.ClientReadableStream<ImageServiceRpc[M]['res']> {
    return this.serverStream(this.img, method, req, opts);
  }

  private serverStream<T>(client: grpc.Client, method: string, req: unknown, opts: CallOptions): grpc.ClientReadableStream<T> {
    const fn = (client as unknown as Record<string, ServerStreaming<T>>)[method].bind(client);
    return fn(req, new grpc.Metadata(), opts.timeoutMs === undefined ? {} : { deadline: Date.now() + opts.timeoutMs });
  }

  /** GetContainerEvents as a stream; cancel() it to stop. */
  events(): grpc.ClientReadableStream<RuntimeServiceRpc['GetContainerEvents']['res']> {
    return this.runtimeStream('GetContainerEvents', {});
  }

  close(): void {
    this.rt.close();
    this.img.close();
  }
}

/** Every message of a stream, once it ends (rejects with the call's error). */
export function readAll<T>(stream: grpc.ClientReadableStream<T>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const got: T[] = [];
    stream.on('data', (m: T) => got.push(m));
    stream.on('error', reject);
    stream.on('end', () => resolve(got));
  });
}
