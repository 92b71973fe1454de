// A blob written into the content store's ingest dir at offsets, in any order (a
// download in parallel ranges), and read back in order while it is written: the reader
// hashes every byte once and hands it on (to the layer unpacker), so a layer unpacks as
// it downloads and is never read back from the disk. The blob is committed (digest and
// size checked, fsynced, renamed into place) only once all of it is written and hashed;
// a failure anywhere leaves nothing in the store.
import { createHash, Hash } from 'crypto';
import { close, fsync, open, read, rename, unlink, writev } from 'fs';
import { Readable } from 'stream';
import { promisify } from 'util';
import { InvalidArgument, Unavailable } from '../errors';

/** A blob whose bytes are not the ones its digest (or size) names. */
export class DigestMismatch extends InvalidArgument {}

const openFd = promisify(open);
const readFd = promisify(read);
const fsyncFd = promisify(fsync);
const closeFd = promisify(close);
const renameFile = promisify(rename);
const unlinkFile = promisify(unlink);

/** Bytes the reader asks for at once: each read is a thread-pool round trip. */
const READ_CHUNK = 256 * 1024;
/** A range's bytes queued for the disk beyond this pause its source. */
const WRITE_QUEUE_MAX = 256 * 1024;

/** Where a blob's bytes go: positional writes of a source stream. */
export interface BlobSink {
  readonly size: number;
  /**
   * Copy source's bytes to [start, start + length): exactly length bytes, or it fails
   * (UNAVAILABLE naming `what`); an error of source's own goes through sourceError.
   */
  writeRange(source: Readable, start: number, length: number, what: string, sourceError?: (e: Error) => Error): Promise<void>;
}

export class BlobIngest implements BlobSink {
  /** Written intervals [start, end), merged, in order. */
  private written: [number, number][] = [];
  private readonly hash: Hash = createHash('sha256');
  /** Bytes hashed so far: the reader's position. */
  private hashed = 0;
  private follower: BlobReader | null = null;
  private fillDone = false;
  private failure: Error | null = null;
  /** Called when more is written, the fill ends or fails. */
  private wake: (() => void)[] = [];
  /** Writes running: the file is closed only once they are back. */
  private writes = 0;
  private idle: (() => void) | null = null;
  private closed = false;
  /** The read running (the reader's or commit's): reads hash in order, one at a time. */
  private reading: Promise<unknown> = Promise.resolve();

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

  /** Resolves when more is written or the fill ends. */
  waitForMore(): Promise<void> {
    return new Promise((resolve) => this.wake.push(resolve));
  }

  writeRange(source: Readable, start: number, length: number, what: string, sourceError: (e: Error) => Error = (e) => e): Promise<void> {
    const end = start + length;
    if (start < 0 || end > this.size) return Promise.reject(new InvalidArgument(`${what}: range ${start}-${end} is outside the blob's ${this.size} bytes`));
    if (source.destroyed) return Promise.reject(new Unavailable(`${what}: the connection closed before the body was read`));
    return new Promise((resolve, reject) => {
      let pos = start;
      let queue: Buffer[] = [];
      let queued = 0;
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
        source.destroy();
        settle();
      };
      // Chunks that arrive while a write runs go out together in one writev.
      const flush = () => {
        if (writing || error) return;
        if (!queue.length) {
          if (!ended) return;
          if (pos !== end) fail(new Unavailable(`${what}: the body ended after ${pos - start} of ${length} bytes`));
          else settle();
          return;
        }
        const bufs = queue;
        const n = queued;
        queue = [];
        queued = 0;
        writing = true;
        this.writes++;
        writev(this.fd, bufs, pos, (err, wrote) => {
          writing = false;
          this.writes--;
          if (this.writes === 0) this.idle?.();
          if (error) return settle();
          if (err) return fail(err);
          if (wrote !== n) return fail(new Error(`${what}: short write to the content store (${wrote} of ${n} bytes)`));
          this.markWritten(pos, pos + n);
          pos += n;
          if (source.isPaused() && !ended) source.resume();
          flush();
        });
      };
      source.on('data', (chunk: Buffer) => {
        if (error) return;
        if (pos + queued + chunk.length > end) return fail(new DigestMismatch(`${what}: the body has more than the ${length} bytes expected`));
        queue.push(chunk);
        queued += chunk.length;
        if (queued >= WRITE_QUEUE_MAX) source.pause();
        flush();
      });
      source.once('end', () => {
        ended = true;
        flush();
      });
      source.once('error', (e) => fail(sourceError(e)));
      source.once('close', () => {
        if (!ended) fail(new Unavailable(`${what}: the connection closed before the end of the body`));
      });
    });
  }

  /** The blob's bytes in order, as they are written; each byte is hashed as it is read. */
  reader(): Readable {
    if (this.follower) throw new Error(`blob ${this.digest}: read twice while it is written`);
    this.follower = new BlobReader(this);
    return this.follower;
  }

  /** Read [hashed, hashed + n) into buf and hash it: only the reader and commit() call this, one at a time. */
  readNext(buf: Buffer, n: number): Promise<Buffer> {
    const at = this.hashed;
    const p = readFd(this.fd, buf, 0, n, at).then(({ bytesRead }) => {
      if (bytesRead !== n) throw new Error(`blob ${this.digest}: read ${bytesRead} of ${n} bytes at ${at}`);
      this.hashed = at + n;
      const out = buf.subarray(0, n);
      this.hash.update(out);
      return out;
    });
    this.reading = p.catch(() => undefined);
    return p;
  }

  get position(): number {
    return this.hashed;
  }

  /** Why the fill failed, or null; and whether it has ended. */
  get state(): { failure: Error | null; done: boolean } {
    return { failure: this.failure, done: this.fillDone };
  }

  /** The fill ended: with every byte written, or failed. */
  fillEnded(failure: Error | null): void {
    if (!failure && this.prefix !== this.size) failure = new Error(`blob ${this.digest}: ${this.prefix} of ${this.size} bytes written in order`);
    this.fillDone = true;
    this.failure ??= failure;
    this.notify();
    if (this.failure) this.follower?.destroy(this.failure);
  }

  /** Stop: the reader fails with e (the fill is stopped by its owner). */
  abort(e: Error): void {
    this.failure ??= e;
    this.notify();
    this.follower?.destroy(e);
  }

  /**
   * Once the fill ended with every byte written: hash what the reader did not read (it
   * was never asked for, or stopped early), check digest and size, fsync, and rename to
   * dest. Any failure removes the file.
   */
  async commit(dest: string, syncDir: () => Promise<void>): Promise<void> {
    try {
      if (this.failure) throw this.failure;
      const r = this.follower;
      if (r && !r.destroyed && !r.readableEnded) await new Promise<void>((resolve) => r.once('close', resolve).once('end', resolve));
      await this.reading; // a read the reader started before it stopped
      if (this.failure) throw this.failure;
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(1, this.size - this.hashed)));
      while (this.hashed < this.size) await this.readNext(buf, Math.min(buf.length, this.size - this.hashed));
      const got = `sha256:${this.hash.digest('hex')}`;
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

/** Reads a BlobIngest in order, waiting at the end of what is written so far. */
class BlobReader extends Readable {
  private reading = false;

  constructor(private readonly blob: BlobIngest) {
    super({ highWaterMark: READ_CHUNK });
  }

  override _read(): void {
    if (this.reading) return;
    this.reading = true;
    this.pump().then(
      () => (this.reading = false),
      (e: Error) => this.destroy(e),
    );
  }

  /** Push the next chunk: what is written past the position, or wait for it. */
  private async pump(): Promise<void> {
    for (;;) {
      const b = this.blob;
      const { failure, done } = b.state;
      if (failure) throw failure;
      if (b.position === b.size) {
        this.push(null);
        return;
      }
      const n = Math.min(READ_CHUNK, b.prefix - b.position);
      if (n > 0) {
        // Pushed bytes belong to the consumer: a fresh buffer per chunk, handed on.
        const chunk = await b.readNext(Buffer.allocUnsafe(n), n);
        if (this.destroyed) return;
        if (!this.push(chunk)) return;
        continue;
      }
      if (done) throw new Error(`blob ${b.digest}: the download ended at ${b.prefix} of ${b.size} bytes`);
      await b.waitForMore();
      if (this.destroyed) return;
    }
  }
}
