// skiff's own API (api/skiff/v1/admin.proto), served next to the CRI on skiffd's
// socket: what the `skiff` CLI needs and the CRI lacks: image import, pull progress.
// The CLI's client is in client.ts: skiffd itself does not load grpc-js (3 MiB of RSS).
import * as fs from 'fs';
import * as path from 'path';
import type * as grpc from '@grpc/grpc-js';
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
