// Layers unpack on a thread of their own (unpack_worker.ts). A pull is CPU-bound on a
// small node, and skiffd's main thread was its long pole: the download, both digests,
// and tar parsing and the file calls of every layer, interpreted (lite mode), one after
// another. On the thread the unpack runs beside the download and leaves the event loop
// to the CRI. One thread serves every layer unpacking at the time; it starts with the
// first and ends when none has run for a while (a thread costs about 10 MiB).
import * as path from 'path';
import { finished, Readable } from 'stream';
import { Worker } from 'worker_threads';
import { InvalidArgument } from '../errors';
import { Compression, LayerEscape, UnpackResult } from './unpack';

/** Main thread -> unpacker. */
export type ToUnpacker =
  | { type: 'start'; id: number; dir: string; compression: Compression }
  | { type: 'data'; id: number; chunk: Uint8Array }
  | { type: 'end'; id: number }
  | { type: 'abort'; id: number; reason: string };

/** Unpacker -> main thread. */
type FromUnpacker =
  | { type: 'ack'; id: number; chunks: number }
  | { type: 'done'; id: number; result: UnpackResult }
  | { type: 'failed'; id: number; error: { name: string; message: string; code?: string } };

const WORKER = path.join(__dirname, 'unpack_worker.js');
/** Chunks of one layer posted and not yet read by the unpacker: bounds what waits in memory. */
const IN_FLIGHT = 4;
/** The unpacker acknowledges chunks it read this many at a time (or when it has no more). */
export const ACK_EVERY = 2;
/** The thread ends after this long without an unpack (a pull's next layer reuses it). */
const IDLE_MS = 2000;

interface Job {
  source: Readable;
  /** Why the source failed or closed early: the unpack's error is then its echo. */
  sourceError: Error | null;
  resolve: (r: UnpackResult) => void;
  reject: (e: Error) => void;
  onAck: (chunks: number) => void;
}

/** An error as the unpacker reported it, of the class it had there where that matters. */
function rebuild(e: { name: string; message: string; code?: string }): Error {
  if (e.name === 'LayerEscape') return new LayerEscape(e.message);
  if (e.name === 'InvalidArgument') return new InvalidArgument(e.message);
  const err: NodeJS.ErrnoException = new Error(e.message);
  if (e.code) err.code = e.code;
  return err;
}

export class UnpackThread {
  private worker: Worker | null = null;
  private readonly jobs = new Map<number, Job>();
  private nextId = 1;
  private idle: NodeJS.Timeout | null = null;

  /**
   * unpackLayer(source, dir, compression) on the thread. It settles only once the thread
   * is done with dir: the caller may remove it then. A source that fails (or closes
   * before its end) stops the unpack and is the error thrown. With handOff the source's
   * chunks are fresh buffers no one else holds: they move to the thread uncopied, so that
   * they are not garbage here as well (copies would be, until a full GC).
   */
  unpack(source: Readable, dir: string, compression: Compression, handOff = false): Promise<UnpackResult> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise<UnpackResult>((resolve, reject) => {
      let inFlight = 0;
      let ended = false;
      const job: Job = {
        source,
        sourceError: null,
        resolve,
        reject,
        onAck: (chunks) => {
          inFlight -= chunks;
          if (inFlight < IN_FLIGHT && source.isPaused() && !ended) source.resume();
        },
      };
      this.jobs.set(id, job);
      const stop = (e: Error) => {
        if (job.sourceError || ended) return;
        job.sourceError = e;
        ended = true;
        worker.postMessage({ type: 'abort', id, reason: e.message } satisfies ToUnpacker);
      };
      worker.postMessage({ type: 'start', id, dir, compression } satisfies ToUnpacker);
      source.on('data', (chunk: Buffer) => {
        // A slice of a larger buffer (a small read comes from Node's shared pool) is copied.
        const move = handOff && chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
        worker.postMessage({ type: 'data', id, chunk } satisfies ToUnpacker, move ? [chunk.buffer as ArrayBuffer] : []);
        if (++inFlight >= IN_FLIGHT) source.pause();
      });
      // Also a source that ended or failed already (a pull stopped before this began).
      finished(source, (e) => {
        if (e) return stop(e);
        if (ended) return;
        ended = true;
        worker.postMessage({ type: 'end', id } satisfies ToUnpacker);
      });
    });
  }

  /** End the thread now if no unpack runs. */
  async release(): Promise<void> {
    if (this.jobs.size || !this.worker) return;
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    const worker = this.worker;
    this.worker = null;
    await worker.terminate();
  }

  private start(): Worker {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER);
    worker.unref(); // a pull under way keeps the process alive; the thread alone does not
    worker.on('message', (m: FromUnpacker) => this.onMessage(m));
    worker.on('error', (e) => this.onExit(worker, e));
    worker.on('exit', (code) => this.onExit(worker, new Error(`the layer unpack thread exited (code ${code})`)));
    this.worker = worker;
    return worker;
  }

  private onMessage(m: FromUnpacker): void {
    const job = this.jobs.get(m.id);
    if (!job) return;
    if (m.type === 'ack') return job.onAck(m.chunks);
    this.finish(m.id, job);
    if (m.type === 'done') job.resolve(m.result);
    else job.reject(job.sourceError ?? rebuild(m.error));
  }

  private finish(id: number, job: Job): void {
    this.jobs.delete(id);
    job.source.removeAllListeners('data');
    if (!job.source.destroyed && !job.source.readableEnded) job.source.destroy();
    if (this.jobs.size === 0 && this.worker) {
      const worker = this.worker;
      this.idle = setTimeout(() => {
        if (this.worker !== worker || this.jobs.size) return;
        this.worker = null;
        void worker.terminate();
      }, IDLE_MS);
      this.idle.unref();
    }
  }

  /** The thread died (it cannot have, short of a bug or no memory): its unpacks fail, none writes on. */
  private onExit(worker: Worker, e: Error): void {
    if (this.worker !== worker) return;
    this.worker = null;
    for (const [id, job] of [...this.jobs]) {
      this.finish(id, job);
      job.reject(job.sourceError ?? e);
    }
  }
}
