// How far a running pull is: per blob (config and layers), its size and the bytes
// fetched so far, counted as they stream from the registry into the content store.
import { pipeline, Readable, Transform } from 'stream';

export interface BlobProgress {
  digest: string;
  size: number;
  fetched: number;
  done: boolean;
}

export class PullProgress {
  private readonly blobs = new Map<string, BlobProgress>();

  /** A blob the pull needs (in manifest order). */
  expect(d: { digest: string; size: number }): void {
    if (!this.blobs.has(d.digest)) this.blobs.set(d.digest, { digest: d.digest, size: d.size, fetched: 0, done: false });
  }

  /** The blob's stream, counted as it is read. */
  count(digest: string, source: Readable): Readable {
    const blob = this.blobs.get(digest);
    if (!blob) return source;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        blob.fetched += chunk.length;
        cb(null, chunk);
      },
    });
    pipeline(source, counter, () => undefined);
    return counter;
  }

  /** n more bytes of the blob were fetched. */
  add(digest: string, n: number): void {
    const blob = this.blobs.get(digest);
    if (blob) blob.fetched += n;
  }

  /** The blob is stored (fetched and verified, or it was already there). */
  done(digest: string): void {
    const blob = this.blobs.get(digest);
    if (blob) blob.done = true;
  }

  snapshot(): BlobProgress[] {
    return [...this.blobs.values()].map((b) => ({ ...b }));
  }
}
