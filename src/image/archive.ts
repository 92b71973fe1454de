// Image archives, for nodes without a registry: an OCI image layout in a tar
// (index.json + blobs/sha256/...) or a `docker save` tar (manifest.json, a
// config file and layer tars). One pass over the tar puts every blob in the
// content store, verified; what the archive's index names is then returned
// for the image service to install.
import { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import * as tar from 'tar-stream';
import { InvalidArgument } from '../errors';
import { ContentStore } from './content_store';
import { formatReference, parseReference, repoName } from './reference';
import { MEDIA, Manifest, Platform } from './registry';

const SMALL_FILE = 4 * 1024 * 1024;
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar';

export interface ArchivedImage {
  config: { digest: string; size: number };
  layers: { digest: string; mediaType: string; size: number }[];
  repoTags: string[];
  /** Manifest blobs the image keeps (OCI layouts). */
  blobs: string[];
}

function normalizeName(name: string): string {
  return name.replace(/^\.\//, '').replace(/^\/+/, '');
}

/** "busybox:1.36" or a full reference as a normalized repo tag; null if it is only a tag. */
function repoTagOf(name: string | undefined): string | null {
  if (!name || (!name.includes('/') && !name.includes(':'))) return null;
  try {
    const ref = parseReference(name);
    return ref.tag ? `${repoName(ref)}:${ref.tag}` : formatReference(ref);
  } catch {
    return null;
  }
}

/** Read a tar entry to its end, keeping nothing. */
async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of entry);
}

/** Read an archive into the content store; returns the images it holds. */
export async function readImageArchive(source: Readable, store: ContentStore, platform: Platform): Promise<ArchivedImage[]> {
  const small = new Map<string, Buffer>();
  const byPath = new Map<string, { digest: string; size: number }>();
  const extract = tar.extract();
  const piping = pipeline(source, extract);
  piping.catch(() => undefined);
  try {
    for await (const entry of extract) {
      const name = normalizeName(entry.header.name);
      const size = entry.header.size ?? 0;
      const blob = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
      if (entry.header.type !== 'file') {
        entry.resume();
      } else if (blob) {
        const digest = `sha256:${blob[1]}`;
        // A blob the store has is read past: the store would destroy a source it does not
        // need, and a tar entry left unread stalls the archive's reader for good.
        if (await store.has(digest)) await drain(entry);
        else await store.ingest(digest, entry as unknown as Readable, { size });
        byPath.set(name, { digest, size });
        if (size <= SMALL_FILE) small.set(name, await store.read(digest));
      } else if (name.endsWith('.json') && size <= SMALL_FILE) {
        const chunks: Buffer[] = [];
        for await (const c of entry as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
        small.set(name, Buffer.concat(chunks));
      } else if (name.endsWith('.tar')) {
        byPath.set(name, { digest: await store.ingestUnknown(entry as unknown as Readable), size });
      } else {
        entry.resume();
      }
    }
    await piping;
  } catch (e) {
    extract.destroy();
    await piping.catch(() => undefined);
    throw e;
  }
  if (small.has('index.json')) return fromOciLayout(small, store, platform);
  if (small.has('manifest.json')) return fromDockerSave(small, byPath, store);
  throw new InvalidArgument('image archive: neither index.json (OCI layout) nor manifest.json (docker save) found');
}

function parseJson<T>(b: Buffer | undefined, what: string): T {
  try {
    return JSON.parse((b ?? Buffer.alloc(0)).toString('utf8')) as T;
  } catch {
    throw new InvalidArgument(`image archive: ${what} is not JSON`);
  }
}

async function fromOciLayout(small: Map<string, Buffer>, store: ContentStore, platform: Platform): Promise<ArchivedImage[]> {
  const index = parseJson<Manifest & { manifests?: (Manifest['config'] & { annotations?: Record<string, string> })[] }>(small.get('index.json'), 'index.json');
  const out: ArchivedImage[] = [];
  for (const d of index.manifests ?? []) {
    const names = [repoTagOf(d.annotations?.['io.containerd.image.name']), repoTagOf(d.annotations?.['org.opencontainers.image.ref.name'])];
    let desc = d;
    const blobs = [d.digest];
    let m = parseJson<Manifest>(await store.read(desc.digest), `manifest ${desc.digest}`);
    if (desc.mediaType === MEDIA.ociIndex || desc.mediaType === MEDIA.dockerList || m.manifests) {
      const pick = (m.manifests ?? []).find((x) => x.platform?.os === platform.os && x.platform?.architecture === platform.architecture);
      if (!pick) throw new InvalidArgument(`image archive: ${desc.digest} has no manifest for ${platform.os}/${platform.architecture}`);
      desc = pick;
      blobs.push(pick.digest);
      m = parseJson<Manifest>(await store.read(desc.digest), `manifest ${desc.digest}`);
    }
    if (!m.config) throw new InvalidArgument(`image archive: manifest ${desc.digest} has no config`);
    for (const l of [m.config, ...(m.layers ?? [])])
      if (!(await store.has(l.digest))) throw new InvalidArgument(`image archive: blob ${l.digest} is missing`);
    out.push({
      config: m.config,
      layers: m.layers ?? [],
      repoTags: names.filter((n): n is string => !!n),
      blobs,
    });
  }
  return out;
}

async function fromDockerSave(small: Map<string, Buffer>, byPath: Map<string, { digest: string; size: number }>, store: ContentStore): Promise<ArchivedImage[]> {
  const entries = parseJson<{ Config: string; RepoTags?: string[]; Layers: string[] }[]>(small.get('manifest.json'), 'manifest.json');
  if (!Array.isArray(entries)) throw new InvalidArgument('image archive: manifest.json is not a list');
  const out: ArchivedImage[] = [];
  for (const e of entries) {
    const cfgPath = normalizeName(e.Config ?? '');
    const cfgBytes = small.get(cfgPath);
    if (!cfgBytes) throw new InvalidArgument(`image archive: config "${e.Config}" is missing`);
    const cfgDigest = await store.writeBuffer(cfgBytes);
    const layers = (e.Layers ?? []).map((p) => {
      const l = byPath.get(normalizeName(p));
      if (!l) throw new InvalidArgument(`image archive: layer "${p}" is missing`);
      return { digest: l.digest, mediaType: DOCKER_LAYER, size: l.size };
    });
    out.push({
      config: { digest: cfgDigest, size: cfgBytes.length },
      layers,
      repoTags: (e.RepoTags ?? []).map((t) => repoTagOf(t)).filter((n): n is string => !!n),
      blobs: [],
    });
  }
  return out;
}
