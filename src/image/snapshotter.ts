// Snapshotter: unpacked layers addressed by chain id, shared by every image
// that has them, and each container's rootfs as an overlay of them with its
// own upper and work dirs; an image's read-only view (an image volume) is an overlay of
// its layers alone. Layout under root:
//   layers/<chain-id hex>/fs      a committed layer (never changed again)
//   containers/<id>/{upper,work}  a container's writable layer (and idmapped/, its
//                                 id-mapped layer clones, only while its overlay is made)
//   tmp/                          layers being unpacked (dropped at start)
import { createHash, randomBytes } from 'crypto';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { InvalidArgument, NotFound } from '../errors';
import { bindIdmapped, bindMountReadOnly, MNT_DETACH, MOUNT_ATTR_RDONLY, mountFs, umount2 } from '../sys/libc';
import { isSha256Digest } from './reference';
import { Compression, LayerSource, unpackLayer } from './unpack';

/** chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    if (!isSha256Digest(d)) throw new InvalidArgument(`bad diff_id "${d}"`);
    out.push(out.length === 0 ? d : `sha256:${createHash('sha256').update(`${out[out.length - 1]} ${d}`).digest('hex')}`);
  }
  return out;
}

/** Stats of every container ask for the writable layers' fs_id: the answer is reused. */
const FS_IDS_CACHE_MS = 5000;

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export class Snapshotter {
  private readonly layersDir: string;
  private readonly containersDir: string;
  private readonly tmpDir: string;
  private readonly unpacking = new Map<string, Promise<void>>();
  private fsIds: { at: number; value: Promise<{ image: string; container: string }> } | undefined;

  constructor(readonly root: string) {
    this.layersDir = path.join(root, 'layers');
    this.containersDir = path.join(root, 'containers');
    this.tmpDir = path.join(root, 'tmp');
  }

  async init(): Promise<void> {
    for (const d of [this.layersDir, this.containersDir]) await fsp.mkdir(d, { recursive: true, mode: 0o700 });
    // A layer half-unpacked when the daemon died is not committed: drop it.
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    await fsp.mkdir(this.tmpDir, { mode: 0o700 });
  }

  layerDir(chainId: string): string {
    if (!isSha256Digest(chainId)) throw new InvalidArgument(`bad chain id "${chainId}"`);
    return path.join(this.layersDir, chainId.slice('sha256:'.length), 'fs');
  }

  async hasLayer(chainId: string): Promise<boolean> {
    try {
      await fsp.access(this.layerDir(chainId));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Unpack a layer into a new snapshot for chainId and commit it; its
   * diff_id must be the one the image config names. A layer present already
   * is not unpacked again; two callers of one chain id share one unpack.
   * beforeCommit (the blob being stored, when the layer unpacks as it downloads)
   * must resolve before the layer is committed: a layer never outlives a failed blob.
   * A caller that joined an unpack which then failed (its pull stopped: its own
   * download broke, or another of its layers did) unpacks from its own source.
   * The layer unpacks in a skiff-unpack process of its own (unpack.ts).
   */
  addLayer(chainId: string, diffId: string, source: () => Promise<LayerSource>, compression: Compression, beforeCommit?: () => Promise<void>): Promise<void> {
    const running = this.unpacking.get(chainId);
    if (running) return running.catch(() => this.addLayer(chainId, diffId, source, compression, beforeCommit));
    const p = this.doAddLayer(chainId, diffId, source, compression, beforeCommit).finally(() => this.unpacking.delete(chainId));
    this.unpacking.set(chainId, p);
    return p;
  }

  private async doAddLayer(chainId: string, diffId: string, source: () => Promise<LayerSource>, compression: Compression, beforeCommit: (() => Promise<void>) | undefined): Promise<void> {
    if (await this.hasLayer(chainId)) return;
    const work = path.join(this.tmpDir, randomBytes(8).toString('hex'));
    await fsp.mkdir(path.join(work, 'fs'), { recursive: true, mode: 0o755 });
    try {
      const r = await unpackLayer(await source(), path.join(work, 'fs'), compression);
      if (r.diffId !== diffId) throw new InvalidArgument(`layer for ${chainId}: content has diff_id ${r.diffId}, the image config says ${diffId}`);
      await beforeCommit?.();
      await fsp.rename(work, path.dirname(this.layerDir(chainId)));
    } catch (e) {
      await fsp.rm(work, { recursive: true, force: true });
      throw e;
    }
  }

  async removeLayer(chainId: string): Promise<void> {
    await fsp.rm(path.dirname(this.layerDir(chainId)), { recursive: true, force: true });
  }

  /** Bytes and inodes the unpacked layers take (hardlinked files counted once). */
  layersUsage(): Promise<{ bytes: number; inodes: number }> {
    return diskUsage(this.layersDir);
  }

  /** Bytes and inodes of every container's writable layer together. */
  containersUsage(): Promise<{ bytes: number; inodes: number }> {
    return diskUsage(this.containersDir);
  }

  /**
   * The fs_id mountpoints of the layers' filesystem and of the writable layers'. kubelet
   * takes two different strings for two disks ("split image filesystem"), so both are the
   * snapshotter root (containerd's convention) while one filesystem (one st_dev) holds
   * both, and the containers dir once it is a filesystem of its own.
   */
  filesystemIds(): Promise<{ image: string; container: string }> {
    const now = Date.now();
    if (this.fsIds && now - this.fsIds.at < FS_IDS_CACHE_MS) return this.fsIds.value;
    const value = Promise.all([fsp.stat(this.layersDir), fsp.stat(this.containersDir)]).then(([layers, containers]) => ({
      image: this.root,
      container: layers.dev === containers.dev ? this.root : this.containersDir,
    }));
    this.fsIds = { at: now, value };
    value.catch(() => (this.fsIds = undefined));
    return value;
  }

  /** Bytes and inodes of a container's writable layer. */
  /** A container's writable layer: the upper dir of its rootfs overlay. */
  upperDir(containerId: string): string {
    return path.join(this.containersDir, containerId, 'upper');
  }

  containerUsage(containerId: string): Promise<{ bytes: number; inodes: number }> {
    if (!CONTAINER_ID.test(containerId)) throw new InvalidArgument(`bad container id "${containerId}"`);
    return diskUsage(path.join(this.containersDir, containerId, 'upper'));
  }

  async listLayers(): Promise<string[]> {
    return (await fsp.readdir(this.layersDir)).filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /**
   * Mount a container's rootfs at target (an existing directory): the layers
   * of chainIds (base first, as an image lists them) under its own upper dir.
   * With idmap (a pod with a user namespace) the layers are seen through the pod's
   * mappings and the upper dir belongs to the pod's root on the host; see mountIdmapped.
   */
  async mountRootfs(containerId: string, chainIds: string[], target: string, idmap?: RootfsIdmap): Promise<void> {
    if (!CONTAINER_ID.test(containerId)) throw new InvalidArgument(`bad container id "${containerId}"`);
    const lowers = await this.lowerDirs(chainIds, `container ${containerId}: `);
    const dir = path.join(this.containersDir, containerId);
    await fsp.mkdir(path.join(dir, 'upper'), { recursive: true, mode: 0o755 });
    await fsp.mkdir(path.join(dir, 'work'), { recursive: true, mode: 0o700 });
    // One option per lower layer: no length limit on the list.
    const mount = (layers: string[]) =>
      mountFs('overlay', target, [
        ...layers.map((l): [string, string] => ['lowerdir+', l]),
        ['upperdir', path.join(dir, 'upper')],
        ['workdir', path.join(dir, 'work')],
        ['source', 'skiff'],
      ]);
    try {
      if (idmap) await this.mountIdmapped(dir, lowers, idmap, mount);
      else mount(lowers);
    } catch (e) {
      await this.removeWritableLayer(dir);
      throw e;
    }
  }

  /**
   * The overlay of a user-namespaced pod's container. overlayfs cannot itself be
   * id-mapped (mount_setattr gives EINVAL), but it takes id-mapped layers (Linux 5.19+):
   * each layer is cloned with the pod's mappings, so the image's root-owned files are its
   * root's, and the upper dir belongs to the pod's root on the host, so what the
   * container writes lands there under the ids it runs as on the host, never the host's
   * root (containerd 2.x's overlay snapshotter does the same). The clones are attached
   * under <dir>/idmapped/ while the overlay is made (kernels before 6.15 take no detached
   * mount as a layer), then detached: the overlay holds its own references.
   */
  private async mountIdmapped(dir: string, lowers: string[], idmap: RootfsIdmap, mount: (layers: string[]) => void): Promise<void> {
    await fsp.chown(path.join(dir, 'upper'), idmap.rootUid, idmap.rootGid);
    await withIdmappedLayers(path.join(dir, IDMAPPED), lowers, idmap.usernsPath, mount);
  }

  /** Remove a container's writable layer dir, detaching first any id-mapped layer clone
   * a crash left attached in it: a recursive removal would go through it into the layer. */
  private async removeWritableLayer(dir: string): Promise<void> {
    await detachClones(path.join(dir, IDMAPPED));
    await fsp.rm(dir, { recursive: true, force: true });
  }

  /**
   * Mount a read-only view of an image at target (an existing directory): its layers
   * (base first, as an image lists them) as an overlay with no upper dir, or the one
   * layer bind-mounted read-only (overlay needs two lower dirs without an upper one), as
   * containerd's overlay snapshotter makes a View. Nothing is written to the layers.
   * With idmap (a pod with a user namespace) the layers are seen through the pod's
   * mappings, as its rootfs's are: the one layer's bind is id-mapped, or the overlay is
   * made of id-mapped clones attached under clonesDir while it is made.
   */
  async mountView(chainIds: string[], target: string, idmap?: { usernsPath: string; clonesDir: string }): Promise<void> {
    const lowers = await this.lowerDirs(chainIds, '', `an image with no layers cannot be mounted at ${target}`);
    const overlay = (layers: string[]) => mountFs('overlay', target, [...layers.map((l): [string, string] => ['lowerdir+', l]), ['source', 'skiff']], MOUNT_ATTR_RDONLY);
    if (!idmap) {
      if (lowers.length === 1) bindMountReadOnly(lowers[0], target);
      else overlay(lowers);
    } else if (lowers.length === 1) {
      const userns = await fsp.open(idmap.usernsPath, 'r');
      try {
        bindMountReadOnly(lowers[0], target, userns.fd);
      } finally {
        await userns.close();
      }
    } else await withIdmappedLayers(idmap.clonesDir, lowers, idmap.usernsPath, overlay);
  }

  /** The unpacked dirs of chainIds (base first, as an image lists them) in the order overlay
   * lists its lower dirs, the top first; InvalidArgument for none, NotFound for a layer not
   * unpacked. Messages start with `what`. */
  private async lowerDirs(chainIds: string[], what: string, noLayers = `${what}an image with no layers`): Promise<string[]> {
    if (chainIds.length === 0) throw new InvalidArgument(noLayers);
    const lowers = [...chainIds].reverse().map((c) => this.layerDir(c));
    for (const l of lowers) {
      try {
        await fsp.access(l);
      } catch {
        throw new NotFound(`${what}layer ${path.basename(path.dirname(l))} is not unpacked`);
      }
    }
    return lowers;
  }

  /** Unmount a view (mountView), every mount stacked at target. An error other than "not
   * mounted" or "gone" is thrown: the caller must not remove a directory that may still
   * show the layers. */
  unmountView(target: string): void {
    for (let i = 0; i < 64; i++) {
      try {
        umount2(target, MNT_DETACH);
      } catch (e) {
        const errno = (e as NodeJS.ErrnoException).errno;
        if (errno === 22 || errno === 2) return; // EINVAL: not a mount point; ENOENT: gone
        throw e;
      }
    }
    throw new Error(`${target} is still mounted after 64 unmounts`);
  }

  /** The container ids with a writable layer. */
  async listWritableLayers(): Promise<string[]> {
    return (await fsp.readdir(this.containersDir).catch(() => [] as string[])).filter((n) => CONTAINER_ID.test(n));
  }

  /** Unmount a container's rootfs (if mounted) and drop its writable layer. */
  async removeRootfs(containerId: string, target: string): Promise<void> {
    if (!CONTAINER_ID.test(containerId)) throw new InvalidArgument(`bad container id "${containerId}"`);
    try {
      umount2(target, MNT_DETACH);
    } catch (e) {
      const errno = (e as NodeJS.ErrnoException).errno;
      if (errno !== 22 && errno !== 2) throw e; // EINVAL: not a mount point; ENOENT: gone
    }
    await this.removeWritableLayer(path.join(this.containersDir, containerId));
  }
}

/** Where a container's id-mapped layer clones are attached while its overlay is made. */
const IDMAPPED = 'idmapped';

/** What a user-namespaced pod's rootfs needs: its user namespace (/proc/<infra>/ns/user)
 * and the host uid and gid of its root. */
export interface RootfsIdmap {
  usernsPath: string;
  rootUid: number;
  rootGid: number;
}

/** Attach under clonesDir a clone of each lower seen through the user namespace at
 * usernsPath, call mount with the clones, then detach them (the overlay mount holds its
 * own references; kernels before 6.15 take no detached mount as a layer). */
async function withIdmappedLayers(clonesDir: string, lowers: string[], usernsPath: string, mount: (layers: string[]) => void): Promise<void> {
  await fsp.mkdir(clonesDir, { mode: 0o700 });
  const userns = await fsp.open(usernsPath, 'r');
  const clones: string[] = [];
  try {
    for (const [i, lower] of lowers.entries()) {
      const clone = path.join(clonesDir, String(i));
      await fsp.mkdir(clone);
      bindIdmapped(lower, clone, userns.fd);
      clones.push(clone);
    }
    mount(clones);
  } finally {
    await userns.close();
    await detachClones(clonesDir);
  }
}

/** Detach and remove every clone under dir (none: nothing to do). A clone that cannot be
 * detached stops here with an error, so that nothing removes the layer through it. */
export async function detachClones(dir: string): Promise<void> {
  const names = await fsp.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  });
  for (const name of names) {
    const clone = path.join(dir, name);
    try {
      umount2(clone, MNT_DETACH);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).errno !== 22) throw e; // EINVAL: not (or no longer) a mount point
    }
    await fsp.rmdir(clone);
  }
  await fsp.rmdir(dir).catch(() => undefined);
}

/** Disk usage of a tree, without following symlinks or crossing into other filesystems;
 * a tree that vanished while walked counts as what was seen. */
export async function diskUsage(dir: string): Promise<{ bytes: number; inodes: number }> {
  const seen = new Set<number>();
  let bytes = 0;
  let inodes = 0;
  let dev: number | undefined;
  const walk = async (p: string): Promise<void> => {
    let st;
    try {
      st = await fsp.lstat(p);
    } catch {
      return;
    }
    dev ??= st.dev;
    if (st.dev !== dev) return;
    if (st.nlink > 1 && !st.isDirectory()) {
      if (seen.has(st.ino)) return;
      seen.add(st.ino);
    }
    bytes += st.blocks * 512;
    inodes++;
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = await fsp.readdir(p);
    } catch {
      return;
    }
    for (const n of names) await walk(path.join(p, n));
  };
  await walk(dir);
  return { bytes, inodes };
}
