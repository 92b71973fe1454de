// A blob written into the content store's ingest dir at offsets, in any order (a
// download in parallel ranges), and read in order while it is written by one follower
// (skiff-unpack, for a layer), which is told how far it is written in order, reads the
// file itself, and reports the digest of what it read: a layer unpacks as it downloads,
// and skiffd neither reads nor hashes its bytes again. The blob is committed (digest
// and size checked, fsynced, renamed into place) only once all of it is written and
// hashed (by commit itself when the follower did not read it all); a failure anywhere
// leaves nothing in the store.
import { createHash, Hash } from 'crypto';
import { close, fsync, open, read, rename, unlink, write } from 'fs';
import { promisify } from 'util';
import { InvalidArgument, Unavailable } from '../errors';
import type { BodySource } from './http_client';

/** A blob whose bytes are not the ones its digest (or size) names. */
export class DigestMismatch extends InvalidArgument {}

const openFd = promisify(open);
const readFd = promisify(read);
const fsyncFd = promisify(fsync);
const closeFd = promisify(close);
const renameFile = promisify(rename);
const unlinkFile = promisify(unlink);

/** Bytes commit reads at once when it hashes the blob itself: each read is a thread-pool round trip. */
const READ_CHUNK = 256 * 1024;
/** A range's bytes go to the disk in writes of this much (but the last), copied into
 * buffers that are reused: each write is a thread-pool round trip, a futex wake, on
 * skiffd's main thread. */
const WRITE_BATCH = 512 * 1024;
/** Full batches waiting for the disk beyond which a range's connection stops reading. */
const WRITE_QUEUE_BATCHES = 2;

/** Where a blob's bytes go: positional writes of a source stream. */
export interface BlobSink {
  readonly size: number;
  /**
   * Copy source's bytes to [start, start + length): exactly length bytes, or it fails
   * (UNAVAILABLE naming `what`); an error of source's own goes through sourceError.
   * onBytes counts the bytes as they come.
   */
  writeRange(source: BodySource, start: number, length: number, what: string, sourceError?: (e: Error) => Error, onBytes?: (n: number) => void): Promise<void>;
}

/**
 * A blob file its follower reads in order as it is written. watch calls onPrefix with how
 * far the file is written in order, now and each time that grows, then onEnd once no more
 * will come (null: all of it is written); it returns a function that stops the calls.
 */
export interface FollowedFile {
  readonly path: string;
  readonly size: number;
  watch(onPrefix: (written: number) => void, onEnd: (e: Error | null) => void): () => void;
  /** The follower read all of it in order: digest is the sha256 of those bytes. */
  readAll(digest: string): void;
  /** The follower is done without having read it all (it failed or was stopped). */
  release(): void;
}

export class BlobIngest implements BlobSink {
  /** Written intervals [start, end), merged, in order. */
  private written: [number, number][] = [];
  private readonly hash: Hash = createHash('sha256');
  /** Bytes commit hashed so far. */
  private hashed = 0;
  /** The follower's digest of the whole blob, once it read it all. */
  private followerDigest: string | null = null;
  /** Settles when the follower is done (read it all or released): commit waits for it. */
  private followerDone: Promise<void> | null = null;
  private endFollower: (() => void) | null = null;
  private fillDone = false;
  private failure: Error | null = null;
  /** Called when more is written, the fill ends or fails. */
  private wake: (() => void)[] = [];
  /** Writes running: the file is closed only once they are back. */
  private writes = 0;
  private idle: (() => void) | null = null;
  private closed = false;

  private constructor(readonly digest: string, readonly size: number, private readonly tmp: string, private readonly fd: number) {}

  /** A new ingest file at tmp (O_EXCL: never reuses a path) for digest and size. */
  static async create(digest: string, size: number, tmp: string): Promise<BlobIngest> {
    return new BlobIngest(digest, size, tmp, await openFd(tmp, 'wx+', 0o600));
  }

  /** Where the bytes are written in order: how far the reader may read. */
  get prefix(): number {
    return this.written.length && this.written[0][0] === 0 ? this.written[0][1] : 0;
  }

  private markWritten(start: number, end: number): void {
    const w = this.written;
    w.push([start, end]);
    w.sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [];
    for (const [s, e] of w) {
      const last = merged[merged.length - 1];
      if (last && s <= last[1]) last[1] = Math.max(last[1], e);
      else merged.push([s, e]);
    }
    this.written = merged;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  writeRange(source: BodySource, start: number, length: number, what: string, sourceError: (e: Error) => Error = (e) => e, onBytes?: (n: number) => void): Promise<void> {
    const end = start + length;
    if (start < 0 || end > this.size) {
      source.destroy();
      return Promise.reject(new InvalidArgument(`${what}: range ${start}-${end} is outside the blob's ${this.size} bytes`));
    }
    return new Promise((resolve, reject) => {
      /** Where the next batch is written, and the end of what came. */
      let pos = start;
      let received = start;
      /** The batch being filled, full batches waiting for the disk, and spare buffers. */
      let cur: Buffer | null = null;
      let fill = 0;
      const full: Buffer[] = [];
      const spare: Buffer[] = [];
      let writing = false;
      let ended = false;
      let error: Error | null = null;
      const settle = () => {
        if (writing) return; // the running write calls back here
        if (error) reject(error);
        else resolve();
      };
      const fail = (e: Error) => {
        if (error) return;
        error = e;
        source.destroy(e);
        settle();
      };
      // One write at a time, of a whole batch (the last may be shorter).
      const flush = () => {
        if (writing || error) return;
        if (ended && cur && fill) {
          full.push(cur.subarray(0, fill));
          cur = null;
        }
        const batch = full.shift();
        if (!batch) {
          if (!ended) return;
          if (pos !== end) fail(new Unavailable(`${what}: the body ended after ${pos - start} of ${length} bytes`));
          else settle();
          return;
        }
        writing = true;
        this.writes++;
        write(this.fd, batch, 0, batch.length, pos, (err, wrote) => {
          writing = false;
          this.writes--;
          if (this.writes === 0) this.idle?.();
          if (error) return settle();
          if (err) return fail(err);
          if (wrote !== batch.length) return fail(new Error(`${what}: short write to the content store (${wrote} of ${batch.length} bytes)`));
          this.markWritten(pos, pos + wrote);
          pos += wrote;
          if (batch.length === WRITE_BATCH) spare.push(batch);
          if (full.length < WRITE_QUEUE_BATCHES) source.resume();
          flush();
        });
      };
      source.consume({
        chunk: (bytes) => {
          if (error) return false;
          if (received + bytes.length > end) {
            fail(new DigestMismatch(`${what}: the body has more than the ${length} bytes expected`));
            return false;
          }
          received += bytes.length;
          onBytes?.(bytes.length);
          for (let off = 0; off < bytes.length; ) {
            cur ??= spare.pop() ?? Buffer.allocUnsafeSlow(WRITE_BATCH);
            const n = bytes.copy(cur, fill, off);
            off += n;
            fill += n;
            if (fill === WRITE_BATCH) {
              full.push(cur);
              cur = null;
              fill = 0;
            }
          }
          flush();
          return full.length < WRITE_QUEUE_BATCHES;
        },
        end: () => {
          ended = true;
          flush();
        },
        error: (e) => fail(sourceError(e)),
      });
    });
  }

  /** The blob's one follower (before the fill ends: commit waits until it is done). */
  follow(): FollowedFile {
    if (this.followerDone) throw new Error(`blob ${this.digest}: followed twice`);
    this.followerDone = new Promise<void>((resolve) => (this.endFollower = resolve));
    const done = (digest: string | null) => {
      if (digest !== null && this.followerDigest === null) this.followerDigest = digest;
      this.endFollower?.();
      this.endFollower = null;
    };
    return {
      path: this.tmp,
      size: this.size,
      watch: (onPrefix, onEnd) => {
        let stopped = false;
        const check = () => {
          if (stopped) return;
          if (this.failure) return onEnd(this.failure);
          onPrefix(this.prefix);
          if (this.fillDone) return onEnd(null);
          this.wake.push(check);
        };
        check();
        return () => (stopped = true);
      },
      readAll: (digest) => done(digest),
      release: () => done(null),
    };
  }

  /** Read [hashed, hashed + n) into buf and hash it (commit's own reads, in order). */
  private readNext(buf: Buffer, n: number): Promise<void> {
    const at = this.hashed;
    return readFd(this.fd, buf, 0, n, at).then(({ bytesRead }) => {
      if (bytesRead !== n) throw new Error(`blob ${this.digest}: read ${bytesRead} of ${n} bytes at ${at}`);
      this.hashed = at + n;
      this.hash.update(buf.subarray(0, n));
    });
  }

  /** The fill ended: with every byte written, or failed. */
  fillEnded(failure: Error | null): void {
    if (!failure && this.prefix !== this.size) failure = new Error(`blob ${this.digest}: ${this.prefix} of ${this.size} bytes written in order`);
    this.fillDone = true;
    this.failure ??= failure;
    this.notify();
  }

  /** Stop: the follower is told of e (the fill is stopped by its owner). */
  abort(e: Error): void {
    this.failure ??= e;
    this.notify();
  }

  /**
   * Once the fill ended with every byte written and the follower (if any) is done: the
   * digest is the follower's when it read it all, else hashed here; check it, fsync, and
   * rename to dest. Any failure removes the file.
   */
  async commit(dest: string, syncDir: () => Promise<void>): Promise<void> {
    try {
      if (this.failure) throw this.failure;
      await this.followerDone;
      if (this.failure) throw this.failure;
      let got = this.followerDigest;
      if (got === null) {
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(1, this.size)));
        while (this.hashed < this.size) await this.readNext(buf, Math.min(buf.length, this.size - this.hashed));
        got = `sha256:${this.hash.digest('hex')}`;
      }
      if (got !== this.digest) throw new DigestMismatch(`blob ${this.digest}: content has digest ${got}`);
      await fsyncFd(this.fd);
      await this.closeFile();
      await renameFile(this.tmp, dest);
      await syncDir();
    } catch (e) {
      await this.discard();
      throw e;
    }
  }

  /** Close (once no write runs) and remove the file. */
  async discard(): Promise<void> {
    await this.closeFile();
    await unlinkFile(this.tmp).catch(() => undefined);
  }

  private async closeFile(): Promise<void> {
    if (this.writes) await new Promise<void>((resolve) => (this.idle = resolve));
    this.idle = null;
    if (this.closed) return;
    this.closed = true;
    await closeFd(this.fd);
  }
}
