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

  /** GetContainerEvents as a stream; cancel() it to stop. */
  events(): grpc.ClientReadableStream<RuntimeServiceRpc['GetContainerEvents']['res']> {
    const fn = (this.rt as unknown as Record<string, (req: unknown) => grpc.ClientReadableStream<RuntimeServiceRpc['GetContainerEvents']['res']>>).GetContainerEvents.bind(this.rt);
    return fn({});
  }

  close(): void {
    this.rt.close();
    this.img.close();
  }
}
