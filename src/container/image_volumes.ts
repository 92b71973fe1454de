// Image volumes (KEP-4639: a CRI Mount that names an `image`): the image's read-only view
// (its layers as an overlay, snapshotter.mountView) mounted at <bundle>/image-volumes/<n>,
// n the mount's index in config.mounts, and bound read-only at container_path, whole or
// only its image_sub_path. Errors carry containerd's and CRI-O's "ImageVolumeMountFailed"
// prefix, which tools match in kubelet's events.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { InvalidArgument, NotFound, SkiffError, Unknown } from '../errors';
import type { Mount } from '../cri/gen/cri';
import type { ImageRecord, ImageService } from '../image/image_service';
import { detachClones, type Snapshotter } from '../image/snapshotter';

export const IMAGE_VOLUME_ERROR = 'ImageVolumeMountFailed';

/** The bundle's dir of image volume mount points. */
export const imageVolumesDir = (bundle: string) => path.join(bundle, 'image-volumes');

/** An image volume a container mounts, as its record keeps it. */
export interface ImageVolume {
  /** The CRI mount's index in config.mounts. */
  mount: number;
  imageId: string;
  /** The image's layers, kept while the container exists. */
  chainIds: string[];
  /** The view's mount point, <bundle>/image-volumes/<mount>. */
  target: string;
  /** What is bound at container_path: target, or the sub path resolved inside it. */
  source: string;
}

/** An image volume to mount: the CRI mount's index, its image, its sub path ('' for all). */
export interface ImageVolumePlan {
  mount: number;
  image: ImageRecord;
  subPath: string;
}

export type ImageLookup = Pick<ImageService, 'find' | 'findExact'>;
export type ViewMounts = Pick<Snapshotter, 'mountView' | 'unmountView'>;

/** A CRI mount that asks for an image volume. */
export const isImageMount = (m: Mount): boolean => !!(m.image && (m.image.image || m.image.image_ref));

const fieldOf = (i: number) => `config.mounts[${i}]`;
const volumeError = <E extends SkiffError>(Cls: new (m: string) => E, msg: string): E => new Cls(`${IMAGE_VOLUME_ERROR}: ${msg}`);

/**
 * Check the image mounts of a CreateContainer and find their images, before anything is
 * made: host_path empty and readonly set (as containerd requires), a relative sub path
 * without "..", and an image present (found as the container's own: image_ref, when set,
 * names the exact image, else image by id, tag or digest); NOT_FOUND naming it if not.
 */
export function planImageVolumes(mounts: Mount[], images: ImageLookup): ImageVolumePlan[] {
  const plans: ImageVolumePlan[] = [];
  mounts.forEach((m, i) => {
    const field = fieldOf(i);
    if (!isImageMount(m)) {
      if (m.image_sub_path) throw volumeError(InvalidArgument, `${field}.image_sub_path "${m.image_sub_path}" is set without an image`);
      return;
    }
    if (m.host_path) throw volumeError(InvalidArgument, `${field}.host_path must be empty for an image volume, not "${m.host_path}"`);
    if (!m.readonly) throw volumeError(InvalidArgument, `${field}.readonly must be true for an image volume`);
    const subPath = checkSubPath(m.image_sub_path, `${field}.image_sub_path`);
    const spec = m.image!;
    const ref = spec.image_ref?.trim();
    let image: ImageRecord | undefined;
    try {
      image = ref ? images.findExact(ref) : images.find(spec.image);
    } catch (e) {
      if (e instanceof SkiffError) e.message = `${IMAGE_VOLUME_ERROR}: ${field}.image: ${e.message}`;
      throw e;
    }
    if (!image) throw volumeError(NotFound, ref ? `${field}.image.image_ref "${ref}" not found` : `${field}.image: image "${spec.image}" not found`);
    plans.push({ mount: i, image, subPath });
  });
  return plans;
}

/** A sub path as given, checked: relative, no ".." and no NUL; '' for the whole image. */
export function checkSubPath(subPath: string, field: string): string {
  if (!subPath) return '';
  if (subPath.includes('\0')) throw volumeError(InvalidArgument, `${field} contains a NUL byte`);
  if (path.posix.isAbsolute(subPath)) throw volumeError(InvalidArgument, `${field} "${subPath}" must be a path relative to the image's root`);
  if (subPath.split('/').includes('..')) throw volumeError(InvalidArgument, `${field} "${subPath}" must not contain ".."`);
  return subPath
    .split('/')
    .filter((p) => p && p !== '.')
    .join('/');
}

/** Symbolic links followed in one sub path at most, as the kernel's MAXSYMLINKS. */
const MAX_LINKS = 40;

/**
 * Resolve a (checked) sub path inside an image's mounted view, following its symbolic
 * links within the view as securejoin does: an absolute link starts again at the image's
 * root (the image's own view of it). A link that climbs above the root is refused
 * (INVALID_ARGUMENT naming the field), as is a loop. The result must be a directory, as
 * containerd requires; a missing one, or a file, is answered as containerd answers
 * (UNKNOWN). Returns the path relative to root with no symbolic link left in it. The
 * view is read-only and its layers never change, so what is resolved stays so.
 */
export async function resolveSubPath(root: string, subPath: string, field: string): Promise<string> {
  const todo = subPath.split('/').filter((p) => p && p !== '.');
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '..') {
      // Only a link's target can bring "..": the sub path itself was checked.
      if (done.length === 0) throw volumeError(InvalidArgument, `${field} "${subPath}" resolves through a symbolic link to outside the image`);
      done.pop();
      continue;
    }
    const at = path.join(root, ...done, part);
    const st = await fsp.lstat(at).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return undefined;
      throw e;
    });
    if (!st) throw volumeError(Unknown, `${field} "${subPath}" does not exist in the image (no "${[...done, part].join('/')}")`);
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw volumeError(InvalidArgument, `${field} "${subPath}": too many levels of symbolic links`);
      const target = await fsp.readlink(at);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter((p) => p && p !== '.'));
      continue;
    }
    if (!st.isDirectory()) {
      throw volumeError(Unknown, `${field} "${subPath}": "${[...done, part].join('/')}" is not a directory (only a directory sub path can be mounted)`);
    }
    done.push(part);
  }
  return done.join('/');
}

/** Where a view's id-mapped layer clones are attached while it is made. */
const CLONES_PREFIX = '.clones-';

/**
 * Mount each planned image volume under the bundle and resolve its sub path; in a pod
 * with a user namespace (usernsPath) each view is id-mapped with the pod's mappings, so
 * that the image's files keep their owners inside it. On a failure the mounts made stay
 * for the caller's undo (unmountImageVolumes), which must be registered before this is
 * called.
 */
export async function mountImageVolumes(bundle: string, plans: ImageVolumePlan[], views: ViewMounts, usernsPath?: string): Promise<ImageVolume[]> {
  const out: ImageVolume[] = [];
  for (const p of plans) {
    const field = fieldOf(p.mount);
    const target = path.join(imageVolumesDir(bundle), String(p.mount));
    await fsp.mkdir(target, { recursive: true, mode: 0o755 });
    try {
      await views.mountView(p.image.chainIds, target, usernsPath ? { usernsPath, clonesDir: path.join(imageVolumesDir(bundle), `${CLONES_PREFIX}${p.mount}`) } : undefined);
    } catch (e) {
      if (e instanceof SkiffError) e.message = `${IMAGE_VOLUME_ERROR}: ${field}: image ${p.image.id}: ${e.message}`;
      throw e;
    }
    const sub = p.subPath ? await resolveSubPath(target, p.subPath, `${field}.image_sub_path`) : '';
    out.push({ mount: p.mount, imageId: p.image.id, chainIds: p.image.chainIds, target, source: sub ? path.join(target, sub) : target });
  }
  return out;
}

/**
 * Unmount every image volume under the bundle and remove the mount points. Driven by
 * what is on disk, not by a record, so that it also undoes a create a crash cut short.
 * Throws (and leaves the bundle) when a mount point cannot be freed: removing the bundle
 * then must not reach into the layers.
 */
export async function unmountImageVolumes(bundle: string, views: ViewMounts): Promise<void> {
  const dir = imageVolumesDir(bundle);
  const names = await fsp.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return [] as string[];
    throw e;
  });
  for (const n of names) {
    const target = path.join(dir, n);
    // Layer clones a crash left attached while a view was made: detached, never removed
    // through.
    if (n.startsWith(CLONES_PREFIX)) {
      await detachClones(target);
      continue;
    }
    views.unmountView(target);
    // rmdir refuses (EBUSY) a mount point still mounted.
    await fsp.rmdir(target).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
  await fsp.rmdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}
