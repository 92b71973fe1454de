// Downloading one blob into the content store: a big blob in parallel HTTP ranges (as
// containerd 2.1 does above a size), so that one connection's throughput (a registry
// far away, a CDN that paces each connection) does not bound the pull; a small one, or
// any from a registry that does not serve ranges, in one request.
import { Unavailable } from '../errors';
import type { BlobSink } from './blob_ingest';
import type { BodySource } from './http_client';
import type { ImageReference } from './reference';
import type { AuthConfig, Descriptor, RegistryClient } from './registry';
import type { RegistryHost } from './hosts';

export interface RangeOptions {
  /** Blobs of at least this many bytes are fetched in ranges. */
  minBytes: number;
  /** Ranges of one blob fetched at once. */
  parts: number;
  /** No range is smaller than this (a request costs a round trip). */
  minPart: number;
}

/** Blobs from 32 MiB up, in up to 4 ranges of 8 MiB or more. */
export const DEFAULT_RANGES: RangeOptions = { minBytes: 32 * 1024 * 1024, parts: 4, minPart: 8 * 1024 * 1024 };

/** [start, end] (inclusive) of each part of size bytes: at most `parts`, none under minPart (but a lone one). */
export function splitRanges(size: number, parts: number, minPart: number): [number, number][] {
  const n = Math.max(1, Math.min(parts, Math.floor(size / Math.max(1, minPart))));
  const step = Math.ceil(size / n);
  const out: [number, number][] = [];
  for (let start = 0; start < size; start += step) out.push([start, Math.min(size, start + step) - 1]);
  return out;
}

/**
 * Fetch blob d from host into sink. The first request asks for the first range: a 206
 * answer means the registry serves ranges, and the other ranges are asked for at once;
 * a 200 answer is the whole blob, taken as it is. One range that fails stops the others
 * (their connections are closed) and the fetch fails with its error, once every write
 * started has ended. onBytes counts the bytes received.
 */
export async function fetchBlobInto(
  registry: RegistryClient,
  host: RegistryHost,
  ref: ImageReference,
  d: Descriptor,
  auth: AuthConfig | undefined,
  sink: BlobSink,
  signal: AbortSignal,
  onBytes: (n: number) => void,
  ranges: RangeOptions = DEFAULT_RANGES,
): Promise<void> {
  const parts = d.size >= ranges.minBytes && ranges.parts > 1 ? splitRanges(d.size, ranges.parts, ranges.minPart) : [];
  const bodies = new Set<BodySource>();
  let failure: unknown = null;
  const stop = (e: unknown) => {
    failure ??= e;
    for (const b of bodies) b.destroy();
  };
  const onAbort = () => stop(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  type Blob = Awaited<ReturnType<RegistryClient['openBlob']>>;
  const open = async (range: [number, number] | undefined): Promise<Blob> => {
    if (failure !== null) throw failure;
    const blob = await registry.openBlob(host, ref, d, auth, range);
    bodies.add(blob.body);
    if (failure !== null) {
      blob.body.destroy();
      throw failure;
    }
    return blob;
  };
  const copy = (blob: Blob, range: [number, number] | undefined) => {
    const [start, length] = range ? [range[0], range[1] - range[0] + 1] : [0, d.size];
    return sink.writeRange(blob.body, start, length, blob.what, blob.error, onBytes);
  };
  try {
    if (signal.aborted) throw signal.reason;
    if (parts.length < 2) {
      await copy(await open(undefined), undefined);
      return;
    }
    // The answer to the first range says whether the registry serves ranges at all.
    const first = await open(parts[0]);
    if (!first.partial) {
      await copy(first, undefined);
      return;
    }
    const jobs = [
      copy(first, parts[0]),
      ...parts.slice(1).map(async (p) => {
        const blob = await open(p);
        if (!blob.partial) {
          blob.body.destroy();
          throw new Unavailable(`${blob.what}: the registry answered with the whole blob after it had answered the first range with a range`);
        }
        return copy(blob, p);
      }),
    ].map((job) => job.catch((e: unknown) => stop(e)));
    // Every write has ended (the sink's file may be closed next); the first failure is the cause.
    await Promise.all(jobs);
    if (failure !== null) throw failure;
  } catch (e) {
    stop(e);
    throw failure;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
