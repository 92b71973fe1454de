// ImageService: pulls images into the content store and the snapshotter,
// keeps one durable record per image (by config digest) with its tags and
// digests, finds images by id, tag or digest, and removes them with garbage
// collection of the blobs and layers nothing else uses.
import { failpoint } from '../failpoints';
import { IntentJournal, operationId } from '../store/intents';
import * as path from 'path';
import { Readable } from 'stream';
import { FailedPrecondition, InvalidArgument, NotFound } from '../errors';
import { forEachLimited } from '../store/parallel';
import { RecordStore } from '../store/records';
import { readImageArchive } from './archive';
import { ContentStore } from './content_store';
import type { BlobSink } from './blob_ingest';
import { AuthConfig, Descriptor, RegistryClient, RegistryOptions } from './registry';
import { ImageReference, formatReference, isSha256Digest, parseReference, repoName } from './reference';
import { Snapshotter, chainIds } from './snapshotter';
import { mallocTrim } from '../sys/libc';
import { PullProgress } from './pull_progress';
import type { BlobProgress } from './pull_progress';
import { layerCompression, type LayerSource } from './unpack';
import { fetchBlobInto, RangeOptions } from './blob_fetch';

/** What containers need from an image config (OCI image spec "config"). */
export interface ImageConfigSummary {
  user?: string;
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  stopSignal?: string;
  volumes?: string[];
  labels?: Record<string, string>;
}

export interface ImageRecord {
  /** The config digest: the image id. */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** Bytes of the image's content (compressed layers and config). */
  size: number;
  /** Layer snapshots, base first. */
  chainIds: string[];
  /** Every blob the image needs: manifest, config, layers. */
  blobs: string[];
  config: ImageConfigSummary;
  pulledAt: number;
  /** ImageSpec.annotations of the latest pull (absent in records made before they were kept). */
  annotations?: Record<string, string>;
  /** ImageSpec.runtime_handler of the latest pull ('' for the default). */
  runtimeHandler?: string;
}

/** What a pull was asked for besides the reference: kept with the image. */
export interface PullSpec {
  annotations?: Record<string, string>;
  runtimeHandler?: string;
}

const isStringMap = (v: unknown): v is Record<string, string> =>
  !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');

function isImageRecord(v: unknown): v is ImageRecord {
  const r = v as ImageRecord;
  return (
    !!r &&
    isSha256Digest(r.id) &&
    Array.isArray(r.repoTags) &&
    Array.isArray(r.repoDigests) &&
    Array.isArray(r.chainIds) &&
    Array.isArray(r.blobs) &&
    typeof r.size === 'number' &&
    (r.annotations === undefined || isStringMap(r.annotations)) &&
    (r.runtimeHandler === undefined || typeof r.runtimeHandler === 'string')
  );
}

/** A filesystem as ImageFsInfo reports it: its fs_id mountpoint and what skiff stores there. */
export interface FilesystemUsage {
  mountpoint: string;
  bytes: number;
  inodes: number;
  /** Milliseconds since the epoch. */
  timestamp: number;
}

export interface StorageFilesystems {
  image: FilesystemUsage;
  container: FilesystemUsage;
}

export interface ImageServiceOptions {
  /** Holds content/, snapshots/ and metadata/images/. */
  root: string;
  registry: RegistryOptions;
  /** Layers fetched (and unpacked) at the same time for one pull. */
  parallelLayers?: number;
  /** When a layer blob is fetched in parallel HTTP ranges (blob_fetch.ts). */
  ranges?: RangeOptions;
  /** Chain ids containers still use: GC keeps them. */
  layersInUse?: () => Set<string>;
  /** Image id -> a container that uses it (any state, until removed): never removed. */
  imagesInUse?: () => Map<string, string>;
  /** References of images that are never removed and are reported pinned. */
  pinnedImages?: string[];
  /** Where problems that are not errors go (a torn record skipped at start). */
  warn?: (msg: string) => void;
  /** Told of every pull that ran (not of callers that shared it): metrics. */
  onPull?: (p: { ok: boolean; seconds: number; bytes: number }) => void;
  /** Where a pull records its intent before it writes content. */
  journal?: IntentJournal;
}

/** A layer blob to unpack: in the content store, or read as it downloads. */
interface LayerBlob {
  open(): Promise<LayerSource>;
  /** Resolves once the blob is in the content store, verified. */
  stored: Promise<void>;
  /** Stop its download (if it runs): open()'s follower hears of it, stored rejects. */
  abort(e: Error): void;
  /** open()'s follower is done with it (or was never asked for: another pull's unpack
   * of the layer was shared): the blob is stored without it. */
  release(): void;
}

export class ImageService {
  readonly content: ContentStore;
  readonly snapshots: Snapshotter;
  readonly registry: RegistryClient;
  private readonly records: RecordStore<ImageRecord>;
  private readonly images = new Map<string, ImageRecord>();
  /** Counts the changes to `images` (see generation). */
  private changes = 0;
  private readonly pulls = new Map<string, Promise<ImageRecord>>();
  private readonly progress = new Map<string, PullProgress>();
  private usage: { at: number; value: Promise<StorageFilesystems> } | undefined;

  constructor(private readonly opts: ImageServiceOptions) {
    this.content = new ContentStore(path.join(opts.root, 'content'));
    this.snapshots = new Snapshotter(path.join(opts.root, 'snapshots'));
    this.registry = new RegistryClient(opts.registry);
    this.records = new RecordStore(path.join(opts.root, 'metadata', 'images'), isImageRecord, opts.warn);
  }

  /** Files a killed pull left in the content store's ingest dir, dropped by init. */
  leftoverIngests: string[] = [];

  async init(): Promise<void> {
    this.leftoverIngests = await this.content.init();
    await this.snapshots.init();
    await this.records.init();
    this.images.clear();
    for (const r of (await this.records.all()).values()) this.images.set(r.id, r);
    this.changes++;
  }

  async close(): Promise<void> {
    await this.registry.close();
  }

  /**
   * The image filesystem and the writable layers' filesystem, for ImageFsInfo. On one
   * filesystem both are one entry counting images and writable layers once (CRI-O answers
   * so too): kubelet then takes image_filesystems[0] for both. On two, each counts its
   * own. Walking the trees costs, so a result is reused for a few seconds and callers
   * share a walk.
   */
  storageFilesystems(): Promise<StorageFilesystems> {
    const now = Date.now();
    if (this.usage && now - this.usage.at < 5000) return this.usage.value;
    const value = Promise.all([this.content.usage(), this.snapshots.layersUsage(), this.snapshots.containersUsage(), this.snapshots.filesystemIds()]).then(
      ([c, l, w, ids]): StorageFilesystems => {
        const image = { mountpoint: ids.image, bytes: c.bytes + l.bytes, inodes: c.inodes + l.inodes, timestamp: now };
        if (ids.container === ids.image) {
          const one = { ...image, bytes: image.bytes + w.bytes, inodes: image.inodes + w.inodes };
          return { image: one, container: one };
        }
        return { image, container: { mountpoint: ids.container, ...w, timestamp: now } };
      },
    );
    this.usage = { at: now, value };
    value.catch(() => (this.usage = undefined));
    return value;
  }

  list(): ImageRecord[] {
    return [...this.images.values()];
  }

  /** A number that changes whenever list() would (an image committed, retagged or
   * removed): ListImages keeps its encoded reply while it stays the same. */
  get generation(): number {
    return this.changes;
  }

  /** Find by id (full, or a hex prefix of 12+), tag, or digest reference. */
  find(image: string): ImageRecord | undefined {
    if (isSha256Digest(image)) return this.images.get(image);
    if (/^[a-f0-9]{12,64}$/.test(image)) {
      const hits = this.list().filter((r) => r.id.slice(7).startsWith(image));
      if (hits.length === 1) return hits[0];
    }
    let ref: ImageReference;
    try {
      ref = parseReference(image);
    } catch {
      return undefined;
    }
    const name = formatReference(ref);
    return this.list().find((r) => (ref.digest ? r.repoDigests.includes(`${repoName(ref)}@${ref.digest}`) : r.repoTags.includes(name)));
  }

  /**
   * The image an exact reference names (ImageSpec.image_ref): its id (with or without
   * "sha256:") or a digest reference. A tag or a short id names no exact image.
   */
  findExact(ref: string): ImageRecord | undefined {
    if (isSha256Digest(ref)) return this.images.get(ref);
    if (/^[a-f0-9]{64}$/.test(ref)) return this.images.get(`sha256:${ref}`);
    let parsed: ImageReference;
    try {
      parsed = parseReference(ref);
    } catch (e) {
      throw new InvalidArgument(`image_ref "${ref}": ${(e as Error).message}`);
    }
    if (!parsed.digest) throw new InvalidArgument(`image_ref "${ref}" is neither an image id nor a digest reference`);
    return this.find(ref);
  }

  /** Ids of the images that must stay (reported pinned): pinned by configuration or used
   * by a container. */
  keptIds(): Set<string> {
    const ids = new Set(this.opts.imagesInUse?.().keys() ?? []);
    for (const ref of this.opts.pinnedImages ?? []) {
      const r = this.find(ref);
      if (r) ids.add(r.id);
    }
    return ids;
  }

  /** Why an image must stay: pinned by configuration or used by a container; undefined
   * when it may be removed. */
  keepReason(r: ImageRecord): string | undefined {
    if ((this.opts.pinnedImages ?? []).some((ref) => this.find(ref)?.id === r.id)) return 'pinned by image.pinned_images';
    const user = this.opts.imagesInUse?.().get(r.id);
    return user ? `in use by container ${user}` : undefined;
  }

  /** Pull an image; concurrent pulls of one reference share one (and the first caller's
   * spec). */
  pull(image: string, auth?: AuthConfig, spec: PullSpec = {}): Promise<ImageRecord> {
    const ref = parseReference(image);
    const key = formatReference(ref);
    const running = this.pulls.get(key);
    if (running) return running;
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    const progress = new PullProgress();
    this.progress.set(key, progress);
    const p = this.doPull(ref, auth, progress, spec)
      .then(
        (r) => {
          this.opts.onPull?.({ ok: true, seconds: seconds(), bytes: r.size });
          return r;
        },
        (e: unknown) => {
          this.opts.onPull?.({ ok: false, seconds: seconds(), bytes: 0 });
          throw e;
        },
      )
      .finally(() => {
        this.pulls.delete(key);
        this.progress.delete(key);
        this.trimSoon();
      });
    this.pulls.set(key, p);
    return p;
  }

  private trimTimer: NodeJS.Timeout | null = null;

  /** Once no pull has run for a second, return the C heap's free memory to the system. */
  private trimSoon(): void {
    if (this.trimTimer) clearTimeout(this.trimTimer);
    this.trimTimer = setTimeout(() => {
      this.trimTimer = null;
      if (!this.pulls.size) mallocTrim();
    }, 1000);
    this.trimTimer.unref();
  }

  /** The blobs of a running pull of `image` with the bytes fetched so far; null when
   * no pull of it runs. */
  pullProgress(image: string): BlobProgress[] | null {
    let key: string;
    try {
      key = formatReference(parseReference(image));
    } catch {
      return null;
    }
    return this.progress.get(key)?.snapshot() ?? null;
  }

  /** A pull records its intent first: after a crash mid-pull, start-up collects the
   * blobs and layers it left that no image owns (recovery.ts). */
  private async doPull(ref: ImageReference, auth: AuthConfig | undefined, progress: PullProgress, spec: PullSpec): Promise<ImageRecord> {
    const intent = await this.opts.journal?.begin('pull_image', operationId(), { image: formatReference(ref) });
    failpoint('pull_image.journaled');
    const r = await this.fetchAndInstall(ref, auth, progress, spec);
    failpoint('pull_image.recorded');
    if (intent) await this.opts.journal!.end(intent);
    return r;
  }

  private async fetchAndInstall(ref: ImageReference, auth: AuthConfig | undefined, progress: PullProgress, spec: PullSpec): Promise<ImageRecord> {
    const what = `pull ${formatReference(ref)}`;
    const m = await this.registry.resolve(ref, auth);
    await this.content.writeBuffer(m.body, m.digest);
    const cfgDesc = m.manifest.config;
    if (!cfgDesc || !isSha256Digest(cfgDesc.digest)) throw new InvalidArgument(`${what}: manifest has no config`);
    const layers = m.manifest.layers ?? [];
    for (const d of [cfgDesc, ...layers]) progress.expect(d);
    const fetch = async (d: Descriptor) => {
      await this.content.ingest(d.digest, async () => progress.count(d.digest, await this.registry.fetchBlob(m.host, ref, d, auth)), { size: d.size });
      progress.done(d.digest);
    };
    // A layer unpacks as it downloads: the unpacker reads the blob's bytes in order
    // while the ranges of a big one are still arriving.
    const layerBlob = async (d: Descriptor): Promise<LayerBlob> => {
      const fill = (sink: BlobSink, signal: AbortSignal) => fetchBlobInto(this.registry, m.host, ref, d, auth, sink, signal, (n) => progress.add(d.digest, n), this.opts.ranges);
      const ingest = await this.content.beginIngest(d.digest, d.size, fill);
      if (!ingest) {
        progress.done(d.digest);
        return this.storedBlob(d.digest);
      }
      ingest.committed.then(() => progress.done(d.digest), () => undefined);
      return { open: async () => ingest.file, stored: ingest.committed, abort: (e) => ingest.abort(e), release: () => ingest.file.release() };
    };
    await fetch(cfgDesc);
    failpoint('pull_image.blob');
    return this.install(
      what,
      cfgDesc,
      layers,
      { repoTags: ref.tag ? [`${repoName(ref)}:${ref.tag}`] : [], repoDigests: [`${repoName(ref)}@${m.topDigest}`] },
      [m.digest],
      layerBlob,
      { annotations: spec.annotations ?? {}, runtimeHandler: spec.runtimeHandler ?? '' },
    );
  }

  /** A blob in the content store, as a LayerBlob. */
  private storedBlob(digest: string): LayerBlob {
    return { open: async () => this.content.openRead(digest), stored: Promise.resolve(), abort: () => undefined, release: () => undefined };
  }

  /**
   * Install an image whose config is in the content store: check the config's
   * diff_ids against the layers, get each layer blob (layerBlob) and unpack
   * it into its chain-id snapshot unless present (parallelLayers at a time), then
   * record the image under its config digest with the given names. One layer that
   * fails stops the others; nothing of an unfinished layer remains.
   */
  private async install(
    what: string,
    cfgDesc: { digest: string; size: number },
    layers: { digest: string; mediaType: string; size: number }[],
    names: { repoTags: string[]; repoDigests: string[] },
    extraBlobs: string[],
    layerBlob: (layer: { digest: string; mediaType: string; size: number }) => Promise<LayerBlob>,
    spec: PullSpec = {},
  ): Promise<ImageRecord> {
    let cfg: { config?: Record<string, unknown>; rootfs?: { diff_ids?: string[] } };
    try {
      cfg = JSON.parse((await this.content.read(cfgDesc.digest)).toString('utf8'));
    } catch {
      throw new InvalidArgument(`${what}: image config ${cfgDesc.digest} is not JSON`);
    }
    const diffIds = cfg.rootfs?.diff_ids ?? [];
    if (diffIds.length !== layers.length)
      throw new InvalidArgument(`${what}: the config lists ${diffIds.length} diff_ids for ${layers.length} layers`);
    const chains = chainIds(diffIds);
    const running = new Set<LayerBlob>();
    const stopAll = (e: unknown) => {
      for (const b of running) b.abort(e instanceof Error ? e : new Error(String(e)));
    };
    await forEachLimited(
      layers,
      this.opts.parallelLayers ?? 3,
      async (layer, i) => {
        if (await this.snapshots.hasLayer(chains[i])) return;
        const compression = layerCompression(layer.mediaType);
        const blob = await layerBlob(layer);
        running.add(blob);
        try {
          const beforeCommit = async () => {
            blob.release(); // the unpack read what it needed; commit hashes any rest
            await blob.stored;
          };
          await this.snapshots.addLayer(chains[i], diffIds[i], blob.open, compression, beforeCommit);
          // Stored even when another pull's unpack of this layer was shared.
          blob.release();
          await blob.stored;
        } catch (e) {
          blob.abort(e as Error);
          // A download that failed first is the cause; the unpack's error is then its echo.
          const download = await blob.stored.then(
            () => null,
            (err: unknown) => err,
          );
          throw download ?? e;
        } finally {
          running.delete(blob);
        }
        failpoint('pull_image.layer');
      },
      stopAll,
    );
    const c = (cfg.config ?? {}) as Record<string, unknown>;
    const record: ImageRecord = {
      id: cfgDesc.digest,
      repoTags: names.repoTags,
      repoDigests: names.repoDigests,
      size: cfgDesc.size + layers.reduce((n, l) => n + l.size, 0),
      chainIds: chains,
      blobs: [...extraBlobs, cfgDesc.digest, ...layers.map((l) => l.digest)],
      config: {
        user: c.User as string | undefined,
        env: c.Env as string[] | undefined,
        entrypoint: c.Entrypoint as string[] | undefined,
        cmd: c.Cmd as string[] | undefined,
        workingDir: c.WorkingDir as string | undefined,
        stopSignal: c.StopSignal as string | undefined,
        volumes: c.Volumes ? Object.keys(c.Volumes as object) : undefined,
        labels: c.Labels as Record<string, string> | undefined,
      },
      pulledAt: Date.now(),
      ...spec,
    };
    return this.commit(record);
  }

  /**
   * Import an OCI image layout or `docker save` archive (for nodes without a
   * registry, and kind's image loading). Returns the images installed.
   */
  async importArchive(source: Readable): Promise<ImageRecord[]> {
    try {
      return await this.doImport(source);
    } finally {
      this.trimSoon();
    }
  }

  private async doImport(source: Readable): Promise<ImageRecord[]> {
    const images = await readImageArchive(source, this.content, this.registry.platform);
    const out: ImageRecord[] = [];
    for (const img of images) {
      const what = `import ${img.repoTags[0] ?? img.config.digest}`;
      out.push(
        await this.install(what, img.config, img.layers, { repoTags: img.repoTags, repoDigests: [] }, img.blobs, async (layer) => {
          if (!(await this.content.has(layer.digest))) throw new InvalidArgument(`${what}: layer ${layer.digest} is not in the archive`);
          return this.storedBlob(layer.digest);
        }),
      );
    }
    return out;
  }

  /** Record an image, merging names with an existing record of the same id (whose pull
   * spec stays unless this one names one) and moving its tags away from any other image. */
  private async commit(record: ImageRecord): Promise<ImageRecord> {
    const old = this.images.get(record.id);
    if (old) {
      record.annotations ??= old.annotations;
      record.runtimeHandler ??= old.runtimeHandler;
      record.repoTags = [...new Set([...old.repoTags, ...record.repoTags])];
      record.repoDigests = [...new Set([...old.repoDigests, ...record.repoDigests])];
      record.blobs = [...new Set([...old.blobs, ...record.blobs])];
    }
    for (const other of this.images.values()) {
      if (other.id === record.id || !other.repoTags.some((t) => record.repoTags.includes(t))) continue;
      const moved = { ...other, repoTags: other.repoTags.filter((t) => !record.repoTags.includes(t)) };
      await this.records.put(moved.id.slice(7), moved);
      this.images.set(moved.id, moved);
      this.changes++;
    }
    await this.records.put(record.id.slice(7), record);
    this.images.set(record.id, record);
    this.changes++;
    return record;
  }

  /** Remove an image and collect what no other image or container uses. A pinned image
   * or one a container uses is refused: nothing is removed. */
  async remove(image: string): Promise<void> {
    const r = this.find(image);
    if (!r) throw new NotFound(`image "${image}" not found`);
    const keep = this.keepReason(r);
    if (keep) throw new FailedPrecondition(`image "${image}" (${r.id}) is ${keep}: not removed`);
    // Gone from the map before the first await: a container created meanwhile cannot find it.
    this.images.delete(r.id);
    this.changes++;
    try {
      await this.records.delete(r.id.slice(7));
    } catch (e) {
      this.images.set(r.id, r);
      this.changes++;
      throw e;
    }
    await this.collectGarbage();
  }

  async collectGarbage(): Promise<{ blobs: number; layers: number }> {
    const blobs = new Set<string>();
    const layers = new Set<string>(this.opts.layersInUse?.() ?? []);
    for (const r of this.images.values()) {
      r.blobs.forEach((b) => blobs.add(b));
      r.chainIds.forEach((c) => layers.add(c));
    }
    let nb = 0;
    let nl = 0;
    for (const b of await this.content.list()) {
      if (blobs.has(b)) continue;
      await this.content.delete(b);
      nb++;
    }
    for (const l of await this.snapshots.listLayers()) {
      if (layers.has(l)) continue;
      await this.snapshots.removeLayer(l);
      nl++;
    }
    return { blobs: nb, layers: nl };
  }
}
