// Layer unpacking: a (compressed) layer tar streams into an empty snapshot directory,
// never buffered whole, through skiff-unpack (shim/unpack/unpack.c), one process per
// layer: skiffd writes the layer's bytes into its stdin as they arrive. OCI whiteouts
// become overlayfs whiteouts (a 0:0 char device; an "opaque" xattr for .wh..wh..opq). No
// entry may land outside the directory: absolute names, "..", and writes through a
// symlink an earlier entry planted are refused with an error naming the entry.
//
// Native because the unpack is CPU work per byte and per entry: in skiffd (lite-mode
// JavaScript, tar-stream, a thread of its own) it took 1.1 s of CPU for the bench's 207 MB
// image and was the pull's long pole (docs/BENCHMARKS.md). A process per layer also lets
// the layers of a pull unpack on every core at once.
import { spawn } from 'child_process';
import { existsSync } from 'fs';
import * as path from 'path';
import { finished, Readable } from 'stream';
import { InvalidArgument } from '../errors';
import type { FollowedFile } from './blob_ingest';

export type Compression = 'gzip' | 'zstd' | 'none';

const LAYER_TYPES: Record<string, Compression> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
};

export function layerCompression(mediaType: string): Compression {
  const c = LAYER_TYPES[mediaType];
  if (!c) throw new InvalidArgument(`unsupported layer media type "${mediaType}"`);
  return c;
}

export class LayerEscape extends InvalidArgument {}

/** A layer's bytes: a stream, or a blob file skiff-unpack reads itself as it is written. */
export type LayerSource = Readable | FollowedFile;

export interface UnpackResult {
  /** sha256 of the uncompressed tar: the layer's diff_id. */
  diffId: string;
}

/** A followed blob's written prefix is told to skiff-unpack when it has grown by this much. */
const TELL_STEP = 512 * 1024;

/** The one built beside skiffd (shim/build), else skiff-unpack on $PATH. */
const BUILT = path.resolve(__dirname, '../../../shim/build/skiff-unpack');
let unpackBinary = '';

/** The skiff-unpack to run (the config's image.unpack_binary); empty: the default. */
export function setUnpackBinary(binary: string): void {
  unpackBinary = binary;
}

function binary(): string {
  return unpackBinary || (existsSync(BUILT) ? BUILT : 'skiff-unpack');
}

/** The error skiff-unpack reported on stderr ("<kind> <message>"), of the class it names. */
function unpackError(stderr: string, code: number | null, signal: NodeJS.Signals | null): Error {
  const line = stderr.trim().split('\n').at(-1) ?? '';
  const m = /^(escape|invalid|E[A-Z0-9]+) (.*)$/.exec(line);
  if (!m) return new Error(`skiff-unpack ${signal ? `was killed by ${signal}` : `exited with ${code}`}${line ? `: ${line}` : ''}`);
  if (m[1] === 'escape') return new LayerEscape(m[2]);
  if (m[1] === 'invalid') return new InvalidArgument(`layer: ${m[2]}`);
  const err: NodeJS.ErrnoException = new Error(`layer unpack: ${m[2]}`);
  err.code = m[1];
  return err;
}

/**
 * Unpack one layer into dir (an existing directory, empty for an image layer). Returns
 * its diff_id. It settles only once skiff-unpack has exited: nothing writes into dir
 * afterwards. On error dir is left partly written: the caller owns it and removes it. A
 * source that fails (or closes before its end) stops the unpack and is the error thrown.
 * A FollowedFile is read by skiff-unpack itself, told how far it is written; it hears of
 * the end: readAll with the blob's digest, or release.
 */
export function unpackLayer(source: LayerSource, dir: string, compression: Compression): Promise<UnpackResult> {
  return new Promise<UnpackResult>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let sourceError: Error | null = null;
    let spawnError: Error | null = null;
    const bin = binary();
    const stream = source instanceof Readable ? source : null;
    const followed = stream ? null : (source as FollowedFile);
    const args = [compression, path.resolve(dir), ...(followed ? [followed.path, String(followed.size)] : [])];
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    child.once('error', (e) => (spawnError ??= e));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8192)));
    // EPIPE once it stopped early: its stderr says why.
    child.stdin!.on('error', () => undefined);
    const stopSource = (e: Error) => {
      sourceError ??= e;
      child.kill('SIGKILL');
    };
    let unwatch = () => {};
    if (followed) {
      // skiff-unpack reads in steps of 1 MiB: it hears of the written prefix in steps of
      // TELL_STEP (each write wakes it), and of the whole blob.
      let told = -1;
      unwatch = followed.watch(
        (written) => {
          if (written - told >= TELL_STEP || (written === followed.size && told < written)) child.stdin!.write(`${(told = written)}\n`);
        },
        (e) => (e ? stopSource(e) : child.stdin!.end()),
      );
    } else if (stream) {
      // Also a source that ended or failed already (a pull stopped before this began).
      finished(stream, (e) => e && stopSource(e));
      stream.pipe(child.stdin!);
    }
    const settle = (): UnpackResult => {
      if (sourceError) throw sourceError;
      if (spawnError) throw new Error(`cannot run ${bin}: ${spawnError.message}`);
      if (child.exitCode !== 0) throw unpackError(stderr, child.exitCode, child.signalCode);
      let r: { diffId?: unknown; digest?: unknown };
      try {
        r = JSON.parse(stdout) as typeof r;
      } catch (e) {
        throw new Error(`skiff-unpack printed ${JSON.stringify(stdout.slice(0, 200))}: ${(e as Error).message}`);
      }
      if (typeof r.diffId !== 'string' || (followed && typeof r.digest !== 'string')) throw new Error(`skiff-unpack printed ${JSON.stringify(stdout.slice(0, 200))}`);
      if (followed) followed.readAll(r.digest as string);
      return { diffId: r.diffId };
    };
    child.once('close', () => {
      unwatch();
      if (stream) {
        stream.unpipe(child.stdin!);
        if (!stream.destroyed && !stream.readableEnded) stream.destroy();
      }
      try {
        resolve(settle());
      } catch (e) {
        followed?.release();
        reject(e as Error);
      }
    });
  });
}
