// CDI container edits applied to the OCI spec built for a container, as CDI's
// ContainerEdits.Apply makes them: env, device nodes (missing type and numbers filled
// from the host node, with their device cgroup rule), mounts, hooks, additional gids.
// intelRdt and netDevices are refused: skiff's shim does neither. The host's nodes are
// looked up first (cdiHostNodes) so that the apply step stays pure. In a user namespace no
// node can be made (mknod needs the host's CAP_MKNOD): the shim binds a device from its
// path on the host, so a node that is elsewhere on the host is bound as a mount from there,
// and one the host lacks is refused.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { FailedPrecondition } from '../errors';
import type { Hook, Hooks, IdMapping, LinuxDevice, Mount, Spec } from '../oci/runtime_spec';
import type { CdiEditSet } from './cdi';
import { copyIdMappings } from '../sandbox/userns';
import { deviceBindMount, deviceNumbers } from './devices';

/** A host node as lstat saw it (CDI looks at the path itself, not through a link). */
export interface CdiHostNode {
  type: 'b' | 'c' | 'p' | 'other';
  major: number;
  minor: number;
  /** Permission bits (and setuid/setgid/sticky) of st_mode. */
  mode: number;
}

/** The host paths the device nodes of the edits name (hostPath, else path), looked up. */
export async function cdiHostNodes(sets: CdiEditSet[]): Promise<Map<string, CdiHostNode>> {
  const out = new Map<string, CdiHostNode>();
  for (const s of sets) {
    for (const d of s.edits.deviceNodes ?? []) {
      const p = d.hostPath || d.path;
      if (out.has(p)) continue;
      const st = await fsp.lstat(p, { bigint: true }).catch(() => undefined);
      if (!st) continue;
      out.set(p, {
        type: st.isBlockDevice() ? 'b' : st.isCharacterDevice() ? 'c' : st.isFIFO() ? 'p' : 'other',
        ...deviceNumbers(st),
        mode: Number(st.mode & 0o7777n),
      });
    }
  }
  return out;
}

const HOOK_KEYS: Record<string, keyof Hooks> = {
  prestart: 'prestart',
  createRuntime: 'createRuntime',
  createContainer: 'createContainer',
  startContainer: 'startContainer',
  poststart: 'poststart',
  poststop: 'poststop',
};

const depth = (p: string) => (path.posix.normalize(p).match(/\//g) ?? []).length;

/**
 * Apply the edits to spec in place, in order. A device node whose host path is missing
 * (and that does not name its type and numbers itself, or, in a user namespace, at all)
 * or whose type differs from the host's fails with FAILED_PRECONDITION naming the device
 * and its spec file, as do edits skiff cannot make. mountIdmap: mappings every bind mount
 * of the edits gets (a pod of the userns handler, whose volumes are all id-mapped).
 */
export function applyCdiEdits(
  spec: Spec,
  sets: CdiEditSet[],
  hostNode: (p: string) => CdiHostNode | undefined,
  mountIdmap?: { uidMappings: IdMapping[]; gidMappings: IdMapping[] },
): void {
  const userns = spec.linux.namespaces.some((n) => n.type === 'user');
  let mountsChanged = false;
  for (const { source, file, edits } of sets) {
    const where = `CDI device "${source}" (${file})`;
    if (edits.intelRdt) throw new FailedPrecondition(`${where}: intelRdt (resctrl) edits are not supported by skiff`);
    if (edits.netDevices?.length) throw new FailedPrecondition(`${where}: netDevices edits are not supported by skiff`);

    for (const e of edits.env ?? []) {
      const key = e.slice(0, e.indexOf('='));
      const at = spec.process.env.findIndex((x) => x.slice(0, x.indexOf('=') < 0 ? x.length : x.indexOf('=')) === key);
      if (at >= 0) spec.process.env[at] = e;
      else spec.process.env.push(e);
    }

    for (const d of edits.deviceNodes ?? []) {
      const hostPath = d.hostPath || d.path;
      let type = d.type ?? '';
      let major = d.major ?? 0;
      let minor = d.minor ?? 0;
      let fileMode = d.fileMode;
      // A node that names its type and numbers (a fifo needs none) is made as given; the
      // host's node, if there, still gives the mode.
      const given = type !== '' && (major !== 0 || type === 'p');
      const host = hostNode(hostPath);
      // A fifo is made in a user namespace too; a device node is bound from the host's.
      const bindsHost = userns && d.type !== 'p';
      if (bindsHost && (!host || host.type === 'other'))
        throw new FailedPrecondition(`${where}: device node ${d.path}: a container in a user namespace cannot make device nodes, and the host has no device at ${hostPath} to bind`);
      if (!host || host.type === 'other') {
        if (!given) throw new FailedPrecondition(`${where}: device node ${d.path}: host device ${hostPath} ${host ? 'is not a device node' : 'does not exist'}`);
      } else {
        if (fileMode === undefined) fileMode = host.mode;
        if (!given) {
          if (type === '') type = host.type;
          if (type !== host.type && !(type === 'u' && host.type === 'c'))
            throw new FailedPrecondition(`${where}: device node ${d.path}: type "${type}" but the host's ${hostPath} is "${host.type}"`);
          if (type !== 'p' && major === 0) {
            major = host.major;
            minor = host.minor;
          }
        }
      }
      if (bindsHost && host && (host.major !== major || host.minor !== minor))
        throw new FailedPrecondition(`${where}: device node ${d.path}: ${type} ${major}:${minor} differs from the host's ${hostPath} (${host.major}:${host.minor}), which is what a container in a user namespace gets`);
      if (bindsHost && hostPath !== d.path) {
        const at = spec.mounts.findIndex((x) => x.destination === d.path);
        if (at >= 0) spec.mounts.splice(at, 1);
        spec.mounts.push(deviceBindMount(d.path, hostPath));
        mountsChanged = true;
        spec.linux.devices = spec.linux.devices?.filter((x) => x.path !== d.path);
        allowDevice(spec, type, major, minor, d.permissions);
        continue;
      }
      const dev: LinuxDevice = { path: d.path, type: type as LinuxDevice['type'], major, minor };
      if (fileMode !== undefined) dev.fileMode = fileMode;
      // Owned by the container's user unless the spec says otherwise (CDI does the same).
      const uid = d.uid ?? (spec.process.user.uid > 0 ? spec.process.user.uid : undefined);
      const gid = d.gid ?? (spec.process.user.gid > 0 ? spec.process.user.gid : undefined);
      if (uid !== undefined) dev.uid = uid;
      if (gid !== undefined) dev.gid = gid;
      const devices = (spec.linux.devices ??= []);
      const at = devices.findIndex((x) => x.path === dev.path);
      if (at >= 0) devices[at] = dev;
      else devices.push(dev);
      allowDevice(spec, type, major, minor, d.permissions);
    }

    for (const m of edits.mounts ?? []) {
      const at = spec.mounts.findIndex((x) => x.destination === m.containerPath);
      if (at >= 0) spec.mounts.splice(at, 1);
      const mount: Mount = { destination: m.containerPath, source: m.hostPath, options: [...(m.options ?? [])] };
      if (m.type) mount.type = m.type;
      // skiff's shim takes a mount without a type as a bind only when its options say so.
      if (!m.type && !mount.options!.some((o) => o === 'bind' || o === 'rbind')) mount.options!.push('rbind');
      if (mountIdmap && (mount.type ?? 'bind') === 'bind') Object.assign(mount, copyIdMappings(mountIdmap));
      spec.mounts.push(mount);
      mountsChanged = true;
    }

    for (const h of edits.hooks ?? []) {
      const hook: Hook = { path: h.path };
      if (h.args) hook.args = [...h.args];
      if (h.env) hook.env = [...h.env];
      if (h.timeout !== undefined) hook.timeout = h.timeout;
      const hooks = (spec.hooks ??= {});
      (hooks[HOOK_KEYS[h.hookName]] ??= []).push(hook);
    }

    for (const g of edits.additionalGids ?? []) {
      if (g === 0) continue; // CDI ignores 0
      const gids = (spec.process.user.additionalGids ??= []);
      if (!gids.includes(g)) gids.push(g);
    }
  }
  // Parents before children, otherwise in the order given (CDI sorts the same way).
  if (mountsChanged) spec.mounts = spec.mounts.map((m, i) => ({ m, i })).sort((a, b) => depth(a.m.destination) - depth(b.m.destination) || a.i - b.i).map((x) => x.m);
}

/** The device cgroup rule of a block or character node ("none": no access, so no rule). */
function allowDevice(spec: Spec, type: string, major: number, minor: number, permissions: string | undefined): void {
  if (type !== 'b' && type !== 'c') return;
  const access = permissions === 'none' ? '' : permissions || 'rwm';
  if (access) ((spec.linux.resources ??= {}).devices ??= []).push({ allow: true, type, major, minor, access });
}
