// skiff's own API (api/skiff/v1/admin.proto), served next to the CRI on skiffd's
// socket: what the `skiff` CLI needs and the CRI lacks: image import, pull progress.
import * as fs from 'fs';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { Readable } from 'stream';
import { grpcServiceDefinition } from '../cri/proto';
import type { CriServer } from '../cri/server';
import type { ImageService } from '../image/image_service';

export const ADMIN_PROTO = path.resolve(__dirname, '../../../api/skiff/v1/admin.proto');
const PACKAGE = 'skiff.v1';

export interface ImportedImage {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  size: number;
}

let pkg: protobuf.Namespace | undefined;
function ns(): protobuf.Namespace {
  if (!pkg) pkg = protobuf.parse(fs.readFileSync(ADMIN_PROTO, 'utf8'), { keepCase: true }).root.lookup(PACKAGE) as protobuf.Namespace;
  return pkg;
}

/** The grpc-js definition of one service of skiff's API. */
export function adminServiceDefinition(service: 'Images'): grpc.ServiceDefinition {
  return grpcServiceDefinition(ns(), PACKAGE, service);
}

/** Serve skiff's API on the CRI server's socket. */
export function serveAdmin(server: CriServer, images: ImageService): void {
  server.addExtraService(adminServiceDefinition('Images'), {
    Import: {
      kind: 'clientStream',
      fn: async (messages, ctx) => {
        async function* chunks() {
          for await (const m of messages as AsyncIterable<{ data: Buffer }>) if (m.data.length) yield m.data;
        }
        const source = Readable.from(chunks(), { objectMode: false });
        ctx.signal.addEventListener('abort', () => source.destroy(ctx.signal.reason as Error), { once: true });
        const installed = await images.importArchive(source);
        return {
          images: installed.map((r) => ({ id: r.id, repo_tags: r.repoTags, repo_digests: r.repoDigests, size: r.size })),
        };
      },
    },
    PullProgress: {
      kind: 'unary',
      fn: async (req) => {
        const blobs = images.pullProgress((req as { image: string }).image);
        return { active: blobs !== null, blobs: blobs ?? [] };
      },
    },
  });
}

/** The CLI's side of skiff's API. */
export class AdminClient {
  private readonly images: grpc.Client;

  constructor(socket: string) {
    const Images = grpc.makeGenericClientConstructor(adminServiceDefinition('Images'), 'Images');
    this.images = new Images(socket.startsWith('unix:') ? socket : `unix://${socket}`, grpc.credentials.createInsecure());
  }

  /** The blobs of a running pull of `image` and the bytes fetched so far. */
  pullProgress(image: string): Promise<{ active: boolean; blobs: { digest: string; size: number; fetched: number; done: boolean }[] }> {
    type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
    const fn = (this.images as unknown as Record<string, Unary>).PullProgress.bind(this.images);
    return new Promise((resolve, reject) =>
      fn({ image }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => {
        if (err) return reject(err);
        const r = res as { active: boolean; blobs: { digest: string; size: number | string; fetched: number | string; done: boolean }[] };
        resolve({ active: r.active, blobs: r.blobs.map((b) => ({ ...b, size: Number(b.size), fetched: Number(b.fetched) })) });
      }),
    );
  }

  /** Send an archive to skiffd; resolves with the images it installed. */
  importArchive(source: Readable, timeoutMs = 30 * 60_000): Promise<ImportedImage[]> {
    type ClientStream = (md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientWritableStream<unknown>;
    const fn = (this.images as unknown as Record<string, ClientStream>).Import.bind(this.images);
    return new Promise((resolve, reject) => {
      const call = fn(new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
        err ? reject(err) : resolve((res as { images: ImportedImage[] }).images),
      );
      source.on('error', (e) => {
        call.cancel();
        reject(e);
      });
      (async () => {
        for await (const chunk of source as AsyncIterable<Buffer>) {
          if (!call.write({ data: chunk })) await new Promise((r) => call.once('drain', r));
        }
        call.end();
      })().catch((e: unknown) => {
        call.cancel();
        reject(e);
      });
    });
  }

  close(): void {
    this.images.close();
  }
}
