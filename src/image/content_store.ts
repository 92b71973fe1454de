// ContentStore: content-addressed blobs under <root>/blobs/sha256/<hex>. A blob
// is written to <root>/ingest/ while it is hashed and only renamed into place
// (after fsync) when its digest and size match, so a reader never sees a
// partial or wrong blob, even after the daemon is killed mid-write.
import { createHash, randomBytes } from 'crypto';
import { once } from 'events';
import { createReadStream, createWriteStream, promises as fsp, ReadStream } from 'fs';
import * as path from 'path';
import { Readable } from 'stream';
import { InvalidArgument, NotFound } from '../errors';
import { BlobIngest, BlobSink, DigestMismatch, FollowedFile } from './blob_ingest';
import { isSha256Digest } from './reference';

export { DigestMismatch };

// Every read or write is a thread-pool round trip: Node's 16/64 KiB defaults
// make a 200 MB pull cost thousands of them on skiffd's main thread.
const IO_CHUNK = 256 * 1024;

/** A blob being written by a fill function while its bytes are read in order. */
export interface StreamingIngest {
  /** The blob's file as it is written, for its one follower (there from the start: the
   * blob is committed only once the follower is done or released, file.release(): then
   * the blob is hashed without it). */
  file: FollowedFile;
  /** Resolves once the blob is verified and in place; rejects (the file removed) otherwise. */
  committed: Promise<void>;
  /** Stop the fill and tell the follower of e; committed then rejects. */
  abort(e: Error): void;
}

export interface IngestOptions {
  /** Expected size in bytes: more or fewer bytes fail the write. */
  size?: number;
  /** Sees every chunk as it is written (e.g. to unpack a layer while it streams). */
  onChunk?: (chunk: Buffer) => void;
}

export class ContentStore {
  private readonly blobsDir: string;
  private readonly ingestDir: string;
  /** One write per digest at a time: concurrent callers share it. */
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs', 'sha256');
    this.ingestDir = path.join(root, 'ingest');
  }

  /** Create the directories and drop what a killed write left in ingest/; returns the
   * names of the files dropped. */
  async init(): Promise<string[]> {
    await fsp.mkdir(this.blobsDir, { recursive: true, mode: 0o700 });
    const left = await fsp.readdir(this.ingestDir).catch(() => [] as string[]);
    await fsp.rm(this.ingestDir, { recursive: true, force: true });
    await fsp.mkdir(this.ingestDir, { recursive: true, mode: 0o700 });
    return left;
  }

  blobPath(digest: string): string {
    checkDigest(digest);
    return path.join(this.blobsDir, digest.slice('sha256:'.length));
  }

  async has(digest: string): Promise<boolean> {
    try {
      await fsp.access(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  async size(digest: string): Promise<number> {
    try {
      return (await fsp.stat(this.blobPath(digest))).size;
    } catch (e) {
      throw notFound(digest, e);
    }
  }

  /** A small blob (manifest, config) whole; refuses one larger than maxBytes. */
  async read(digest: string, maxBytes = 4 * 1024 * 1024): Promise<Buffer> {
    const size = await this.size(digest);
    if (size > maxBytes) throw new InvalidArgument(`blob ${digest} is ${size} bytes, more than ${maxBytes}`);
    return fsp.readFile(this.blobPath(digest));
  }

  openRead(digest: string): ReadStream {
    return createReadStream(this.blobPath(digest), { highWaterMark: IO_CHUNK });
  }

  /** Store bytes already in memory under their own digest; returns it. */
  async writeBuffer(data: Buffer, expected?: string): Promise<string> {
    const digest = expected ?? `sha256:${createHash('sha256').update(data).digest('hex')}`;
    await this.ingest(digest, Readable.from([data]), { size: data.length });
    return digest;
  }

  /**
   * Write a blob from a stream, verifying its digest (and size when given).
   * A blob already present is not written again; concurrent writes of one
   * digest share the first (the others' sources are left unread).
   */
  ingest(digest: string, source: Readable | (() => Promise<Readable>), opts: IngestOptions = {}): Promise<void> {
    checkDigest(digest);
    // The stream may fail before we read it (while has() runs): its error is
    // ours to report, through the read loop, never an uncaught 'error'.
    if (typeof source !== 'function') source.on('error', () => undefined);
    const running = this.inflight.get(digest);
    if (running) return running;
    const p = this.doIngest(digest, source, opts).finally(() => this.inflight.delete(digest));
    this.inflight.set(digest, p);
    return p;
  }

  private async doIngest(digest: string, source: Readable | (() => Promise<Readable>), opts: IngestOptions): Promise<void> {
    if (await this.has(digest)) {
      if (typeof source !== 'function') source.destroy();
      return;
    }
    const stream = typeof source === 'function' ? await source() : source;
    await this.write(stream, opts, (got, written) => {
      if (opts.size !== undefined && written !== opts.size) throw new DigestMismatch(`blob ${digest}: got ${written} bytes, expected ${opts.size}`);
      if (got !== digest) throw new DigestMismatch(`blob ${digest}: content has digest ${got}`);
      return digest;
    });
  }

  /**
   * Write a blob that fill() writes at offsets in any order (a download in parallel
   * ranges), while its bytes are read in order through the result's file: the layer
   * unpacker reads a blob as it arrives. The blob is committed once all of it is
   * written and its digest and size check. null when the blob is here already (a write
   * of it that ran meanwhile is waited for). fill() must not return before every write
   * it started has ended, and stops when its signal aborts.
   */
  async beginIngest(digest: string, size: number, fill: (sink: BlobSink, signal: AbortSignal) => Promise<void>): Promise<StreamingIngest | null> {
    checkDigest(digest);
    for (;;) {
      const running = this.inflight.get(digest);
      if (running) {
        await running.catch(() => undefined);
        continue;
      }
      if (await this.has(digest)) return null;
      if (!this.inflight.has(digest)) break;
    }
    const controller = new AbortController();
    const opened = BlobIngest.create(digest, size, path.join(this.ingestDir, randomBytes(8).toString('hex')));
    const committed = (async () => {
      const blob = await opened;
      try {
        await fill(blob, controller.signal);
        blob.fillEnded(null);
      } catch (e) {
        blob.fillEnded(e as Error);
        await blob.discard();
        throw e;
      }
      await blob.commit(this.blobPath(digest), () => syncDir(this.blobsDir));
    })().finally(() => this.inflight.delete(digest));
    this.inflight.set(digest, committed);
    committed.catch(() => undefined); // the caller awaits it
    const blob = await opened;
    const file = blob.follow();
    return {
      file,
      committed,
      abort: (e) => {
        controller.abort(e);
        blob.abort(e);
      },
    };
  }

  /**
   * Store a stream whose digest is not known in advance (e.g. a layer.tar
   * of a docker save archive); returns the digest it was stored under.
   */
  ingestUnknown(source: Readable): Promise<string> {
    source.on('error', () => undefined);
    return this.write(source, {}, (got) => got);
  }

  /**
   * Write a stream to a temp file while hashing it; check() sees the digest
   * and size and returns the digest to commit under (or throws). The blob
   * is fsynced and renamed into place; on any failure nothing remains.
   */
  private async write(stream: Readable, opts: IngestOptions, check: (got: string, written: number) => string): Promise<string> {
    const tmp = path.join(this.ingestDir, randomBytes(8).toString('hex'));
    const hash = createHash('sha256');
    // Chunks that arrive while a write runs go out together in one writev.
    const out = createWriteStream(tmp, { mode: 0o600, flags: 'wx', highWaterMark: IO_CHUNK });
    let written = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        written += chunk.length;
        if (opts.size !== undefined && written > opts.size) throw new DigestMismatch(`blob: more than the expected ${opts.size} bytes`);
        hash.update(chunk);
        opts.onChunk?.(chunk);
        // once() rejects on 'error' and removes its listeners either way.
        if (!out.write(chunk)) await once(out, 'drain');
      }
      const digest = check(`sha256:${hash.digest('hex')}`, written);
      await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
      if (await this.has(digest)) {
        await fsp.rm(tmp, { force: true });
        return digest;
      }
      const fh = await fsp.open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, this.blobPath(digest));
      await syncDir(this.blobsDir);
      return digest;
    } catch (e) {
      stream.destroy();
      // The write stream opens its file lazily: wait until it is closed, or
      // the file could be created after we removed it.
      const closed = new Promise<void>((resolve) => (out.closed ? resolve() : out.once('close', () => resolve())));
      out.destroy();
      await closed;
      await fsp.rm(tmp, { force: true });
      throw e;
    }
  }

  async delete(digest: string): Promise<void> {
    await fsp.rm(this.blobPath(digest), { force: true });
  }

  async list(): Promise<string[]> {
    const names = await fsp.readdir(this.blobsDir);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /** Bytes and inodes the blobs take. */
  async usage(): Promise<{ bytes: number; inodes: number }> {
    let bytes = 0;
    let inodes = 0;
    for (const name of await fsp.readdir(this.blobsDir)) {
      const st = await fsp.lstat(path.join(this.blobsDir, name));
      bytes += st.blocks * 512;
      inodes++;
    }
    return { bytes, inodes };
  }
}

function checkDigest(digest: string): void {
  if (!isSha256Digest(digest)) throw new InvalidArgument(`unsupported or malformed digest "${digest}" (want sha256:<64 hex>)`);
}

function notFound(digest: string, e: unknown): Error {
  return (e as NodeJS.ErrnoException).code === 'ENOENT' ? new NotFound(`blob ${digest} not found`) : (e as Error);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
