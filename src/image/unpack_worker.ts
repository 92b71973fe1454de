// The layer unpacker's thread (worker_threads; unpack_thread.ts starts it): unpackLayer
// runs here on bytes the main thread posts, so that tar parsing and the file calls of a
// pull do not take turns with the CRI on skiffd's event loop. Several layers unpack here
// at once, each under the id the main thread gave it.
import { Readable } from 'stream';
import { getHeapStatistics, setFlagsFromString } from 'v8';
import { runInNewContext } from 'vm';
import { parentPort } from 'worker_threads';
import { unpackLayer } from './unpack';
import { ACK_EVERY, type ToUnpacker } from './unpack_thread';

/** A layer's bytes as the main thread posts them; chunks read out are acknowledged, ACK_EVERY
 * at a time (each message wakes the main thread), so that it sends more (it keeps only a
 * few chunks in flight). */
class PostedSource extends Readable {
  private queue: Buffer[] = [];
  private ended = false;
  private wanted = false;

  private unacked = 0;

  constructor(private readonly ack: (n: number) => void) {
    super({ highWaterMark: 0 });
  }

  add(chunk: Buffer): void {
    this.queue.push(chunk);
    this.drain();
  }

  finish(): void {
    this.ended = true;
    this.drain();
  }

  override _read(): void {
    this.wanted = true;
    this.drain();
  }

  private drain(): void {
    while (this.wanted && this.queue.length) {
      const chunk = this.queue.shift()!;
      if (++this.unacked >= ACK_EVERY || !this.queue.length) {
        this.ack(this.unacked);
        this.unacked = 0;
      }
      this.wanted = this.push(chunk);
    }
    if (this.wanted && this.ended && !this.queue.length) {
      this.wanted = false;
      this.push(null);
    }
  }
}

// Buffers die here by the hundred megabytes (each layer's bytes, compressed and not), and
// those a scavenge finds still waiting in a stream are promoted: V8 frees them only at a
// full GC, which it starts when external memory has grown by 64 MiB, a limit of each
// isolate: beside the main thread's, that took a pull's RSS growth from 45 to 70-80 MiB
// (the bench's image, a busy machine). A full GC of this thread's small heap (about 5
// MiB) once its external memory has grown by EXTERNAL_GROWTH since the last one bounds
// it. Measured there: 4-6 MiB, a growth of about 44-47 MiB for 0.3-0.4 s more of this
// thread's CPU; 8 MiB, 45-47 MiB; 12 MiB, 48-53 MiB; 20 MiB, 57 MiB. (A bound on the total instead of the growth
// collected over and over once that much was live: 3x the thread's CPU.) --expose-gc is
// process-wide, but only contexts made after it get gc(), and skiffd makes none.
const EXTERNAL_GROWTH = 8 * 1024 * 1024;
setFlagsFromString('--expose-gc');
const fullGc = runInNewContext('gc') as () => void;
let externalAfterGc = getHeapStatistics().external_memory;

const port = parentPort;
if (!port) throw new Error('unpack_worker runs as a worker thread (unpack_thread.ts starts it)');
const sources = new Map<number, PostedSource>();

port.on('message', (m: ToUnpacker) => {
  if (m.type === 'start') {
    const source = new PostedSource((n) => port.postMessage({ type: 'ack', id: m.id, chunks: n }));
    sources.set(m.id, source);
    unpackLayer(source, m.dir, m.compression).then(
      (result) => port.postMessage({ type: 'done', id: m.id, result }),
      (e: unknown) => {
        const err = e instanceof Error ? e : new Error(String(e));
        const code = (err as NodeJS.ErrnoException).code;
        port.postMessage({ type: 'failed', id: m.id, error: { name: err.name, message: err.message, code: typeof code === 'string' ? code : undefined } });
      },
    ).finally(() => sources.delete(m.id));
    return;
  }
  const source = sources.get(m.id);
  if (!source) return; // the unpack ended already (it failed): what was in flight is dropped
  if (m.type === 'data') {
    source.add(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
    if (getHeapStatistics().external_memory > externalAfterGc + EXTERNAL_GROWTH) {
      fullGc();
      externalAfterGc = getHeapStatistics().external_memory;
    }
  } else if (m.type === 'end') source.finish();
  else source.destroy(new Error(m.reason));
});
