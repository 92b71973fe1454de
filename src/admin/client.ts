// The `skiff` CLI's side of skiff's own API (api.ts serves it in skiffd).
import * as grpc from '@grpc/grpc-js';
import type { Readable } from 'stream';
import { adminServiceDefinition, ImportedImage } from './api';

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
