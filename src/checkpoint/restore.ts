// A container restored from a checkpoint archive: CreateContainer whose image is the
// archive's path, or an image built from one (one layer holding the archive's files, its
// manifest carrying CRI-O's checkpoint annotation). The archive names the image the container ran on (config.dump) and its
// spec (spec.dump); the new container gets that image, its writable layer from the archive
// and everything else from the new CreateContainer's config (mounts, namespaces of the new
// pod, resources, log path). The shim's start then runs CRIU on the archive's images.
import { promises as fsp } from 'fs';
import * as path from 'path';
import type { ImageSpec } from '../cri/gen/cri';
import { InvalidArgument, NotFound } from '../errors';
import type { Mount, Spec } from '../oci/runtime_spec';
import type { CriuRestoreParams } from '../shim/client';
import type { ImageRecord } from '../image/image_service';
import { CHECKPOINT_DIR, CheckpointSource, CONFIG_DUMP, DELETED_FILES, extractForRestore, readArchiveFiles, SPEC_DUMP } from './archive';
import { applyRootfsDiff } from './rootfs_diff';
import type { ConfigDump } from './checkpoint_service';
import type { Criu } from './criu';

/** How long CRIU may take to restore a container (StartContainer waits for it). */
export const RESTORE_TIMEOUT_MS = 300_000;

/** The manifest annotation CRI-O (and buildah, podman) mark an image built from a
 * checkpoint archive with; its value is the checkpointed container's name. */
export const CHECKPOINT_IMAGE_ANNOTATION = 'io.kubernetes.cri-o.annotations.checkpoint.name';

/** What the restorer needs of the images: the one a CreateContainer names, its manifest
 * (from the content store) and its one layer, unpacked. */
export interface CheckpointImages {
  find(ref: string): ImageRecord | undefined;
  findExact(ref: string): ImageRecord | undefined;
  readBlob(digest: string): Promise<Buffer>;
  layerDir(chainId: string): string;
}

export interface RestorePlan {
  /** The archive's path, or "image <ref>": for messages and the container's record. */
  archive: string;
  source: CheckpointSource;
  criu: string;
  dump: ConfigDump;
  spec: Spec;
  /** The image the checkpointed container ran on: the new one's rootfs. */
  image: ImageSpec;
}

const isBind = (m: Mount) => m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');

function parseJson<T>(files: Map<string, Buffer>, name: string, archive: string): T {
  const data = files.get(name);
  if (!data) throw new InvalidArgument(`checkpoint archive ${archive} has no ${name}`);
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (e) {
    throw new InvalidArgument(`checkpoint archive ${archive}: ${name} is not JSON: ${(e as Error).message}`);
  }
}

/** Each mount point of the new spec there in the rootfs, as the shim makes them for a new
 * container: CRIU mounts onto them. Parents that are symlinks are refused. */
async function ensureMountPoints(rootfs: string, spec: Spec): Promise<void> {
  for (const m of spec.mounts) {
    const parts = m.destination.split('/').filter((p) => p && p !== '.');
    if (parts.includes('..')) throw new InvalidArgument(`mount destination "${m.destination}" leaves the container`);
    let dir = rootfs;
    for (const [i, p] of parts.entries()) {
      const target = path.join(dir, p);
      const st = await fsp.lstat(target).catch(() => null);
      const last = i === parts.length - 1;
      if (st?.isSymbolicLink()) throw new InvalidArgument(`mount destination "${m.destination}": ${path.relative(rootfs, target)} is a symlink in the restored rootfs`);
      if (!st) {
        const fileSource = last && isBind(m) && m.source && (await fsp.stat(m.source).catch(() => null))?.isFile();
        if (fileSource) await fsp.writeFile(target, '', { mode: 0o644, flag: 'wx' });
        else await fsp.mkdir(target, { mode: 0o755 });
      }
      dir = target;
    }
  }
}

export class CheckpointRestorer {
  /** Image id -> whether its manifest marks it a checkpoint (manifests do not change):
   * every CreateContainer asks, and only the first per image reads the manifest. */
  private readonly marked = new Map<string, boolean>();

  constructor(
    private readonly criu: Criu,
    private readonly images?: CheckpointImages,
  ) {}

  /** An image that holds a checkpoint: its layer's directory; undefined for any other. */
  private async checkpointImage(spec: ImageSpec | null): Promise<{ dir: string; ref: string } | undefined> {
    const ref = spec?.image_ref?.trim() || spec?.image || '';
    const image = ref ? (spec?.image_ref?.trim() ? this.images?.findExact(ref) : this.images?.find(ref)) : undefined;
    if (!image || !this.images || this.marked.get(image.id) === false) return undefined;
    if (!this.marked.has(image.id)) this.marked.set(image.id, await this.hasCheckpointAnnotation(image));
    if (!this.marked.get(image.id)) return undefined;
    if (image.chainIds.length !== 1) throw new InvalidArgument(`checkpoint image ${ref}: has ${image.chainIds.length} layers, not the one that holds the archive`);
    return { dir: this.images.layerDir(image.chainIds[0]), ref };
  }

  private async hasCheckpointAnnotation(image: ImageRecord): Promise<boolean> {
    // The manifest is one of the image's blobs before its config (an index may be too).
    for (const digest of image.blobs.slice(0, image.blobs.indexOf(image.id))) {
      let manifest: { config?: { digest?: string }; annotations?: Record<string, string> };
      try {
        manifest = JSON.parse((await this.images!.readBlob(digest)).toString('utf8'));
      } catch {
        continue;
      }
      if (manifest.config?.digest === image.id) return !!manifest.annotations?.[CHECKPOINT_IMAGE_ANNOTATION];
    }
    return false;
  }

  /** The restore a CreateContainer asks for: its image is a checkpoint archive's path, or
   * an image holding one; undefined for any other image. */
  async plan(image: ImageSpec | null): Promise<RestorePlan | undefined> {
    let archive = image?.image ?? '';
    let source: CheckpointSource;
    if (path.isAbsolute(archive)) {
      const st = await fsp.stat(archive).catch(() => null);
      if (!st?.isFile()) throw new NotFound(`config.image.image: checkpoint archive ${archive} not found`);
      source = { tar: archive };
    } else {
      const found = await this.checkpointImage(image);
      if (!found) return undefined;
      archive = `image ${found.ref}`;
      source = { dir: found.dir };
    }
    const criu = await this.criu.require(`restore from ${archive}`);
    const files = await readArchiveFiles(source, [CONFIG_DUMP, SPEC_DUMP]);
    const dump = parseJson<ConfigDump>(files, CONFIG_DUMP, archive);
    const spec = parseJson<Spec>(files, SPEC_DUMP, archive);
    if (!Array.isArray(spec.mounts) || typeof spec.process !== 'object' || !spec.process)
      throw new InvalidArgument(`checkpoint archive ${archive}: ${SPEC_DUMP} is not an OCI runtime spec`);
    const ref = typeof dump.rootfsImageRef === 'string' ? dump.rootfsImageRef : '';
    const name = typeof dump.rootfsImageName === 'string' ? dump.rootfsImageName : '';
    if (!ref && !name) throw new InvalidArgument(`checkpoint archive ${archive}: ${CONFIG_DUMP} names no image`);
    return { archive, source, criu, dump, spec, image: { image: name, image_ref: ref, annotations: {}, user_specified_image: '', runtime_handler: '' } };
  }

  /**
   * Check the archive against the new container's spec, then put its images and writable
   * layer in place (under the bundle, which the container's removal removes): what the
   * shim's create is given. The checkpointed container's bind mounts must all be given by
   * the new config (CRIU has no other source for them), and its terminal setting must be
   * the same (the tty or pipes the processes hold are replaced one for one).
   */
  async prepare(plan: RestorePlan, spec: Spec, bundle: string, rootfs: string): Promise<CriuRestoreParams> {
    const given = new Set(spec.mounts.filter(isBind).map((m) => m.destination));
    for (const m of plan.spec.mounts) {
      if (isBind(m) && !given.has(m.destination))
        throw new InvalidArgument(`checkpoint archive ${plan.archive}: the container had a mount at ${m.destination}, which the new config does not give`);
    }
    if (!!plan.spec.process.terminal !== !!spec.process.terminal)
      throw new InvalidArgument(`checkpoint archive ${plan.archive}: the container ran ${plan.spec.process.terminal ? 'with' : 'without'} a tty; config.tty must be the same`);
    const imagesDir = path.join(bundle, CHECKPOINT_DIR);
    const workDir = path.join(bundle, 'criu-work');
    await fsp.mkdir(imagesDir, { mode: 0o700 });
    await fsp.mkdir(workDir, { mode: 0o700 });
    const { rootfsDiff, owned } = await extractForRestore(plan.source, imagesDir, bundle);
    const deleted = (await readArchiveFiles(plan.source, [DELETED_FILES])).get(DELETED_FILES);
    let deletedList: unknown;
    try {
      deletedList = deleted ? JSON.parse(deleted.toString('utf8')) : undefined;
    } catch {
      throw new InvalidArgument(`checkpoint archive ${plan.archive}: ${DELETED_FILES} is not JSON`);
    }
    await applyRootfsDiff(rootfs, deletedList, rootfsDiff);
    if (rootfsDiff && owned) await fsp.rm(rootfsDiff, { force: true });
    await ensureMountPoints(rootfs, spec);
    return { criu: plan.criu, imagesDir, workDir, timeoutMs: RESTORE_TIMEOUT_MS };
  }
}
