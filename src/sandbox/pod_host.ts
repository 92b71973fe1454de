// What the pod lifecycle does to the host besides files in its own dirs: shims, mounts,
// network namespaces, cgroups. One interface, so that the service's unit tests give it a
// fake and the real one is exercised by the e2e suite.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { bindNetns, makeNetnsMountPoint, unbindNetns } from '../network/netns';
import { CgroupFacts } from '../shim/cgroup_facts';
import { MountTemplate } from '../shim/mount_template';
import { ShimClient, SpawnOptions } from '../shim/client';
import { findShims, killShim, ShimProcess } from '../shim/processes';
import { MNT_DETACH, mountFs, umount2 } from '../sys/libc';
import { cgroupChildren, removeCgroupTree, unescapeMountPath } from './host_cgroups';

export interface PodHost {
  spawnShim(opts: SpawnOptions): Promise<ShimClient>;
  connectShim(socketPath: string): Promise<ShimClient>;
  /** Live shims started with a state dir under `under` (among `pids`, when given; with
   * startedBeforeSelf, only those an earlier skiffd started). */
  findShims(under: string, pids?: number[], startedBeforeSelf?: boolean): Promise<ShimProcess[]>;
  killShim(pid: number): Promise<void>;
  /** A tmpfs for the pod's /dev/shm. */
  mountShm(target: string): void;
  /** Detach a mount; errno 22 (not mounted) and 2 (gone) come back as such. */
  unmount(target: string): void;
  /** Every mount point of skiffd's mount namespace. */
  mountPoints(): Promise<string[]>;
  /** The file a netns is bound on; unbindNetns removes it. */
  makeNetnsMountPoint(target: string): Promise<void>;
  /** Bind the netns on its mount point. */
  bindNetns(source: string, target: string): Promise<void>;
  unbindNetns(target: string): Promise<void>;
  removeCgroupTree(rel: string): Promise<unknown>;
  cgroupChildren(rel: string): Promise<Iterable<string>>;
}

const cgroupFacts = new CgroupFacts();
const mountTemplate = new MountTemplate();

export const hostPods: PodHost = {
  // Without the facts (an unreadable /proc file) the shim reads mountinfo itself, and
  // without the node's template it makes its own.
  spawnShim: async (opts) =>
    ShimClient.spawn({
      ...opts,
      cgroups: opts.cgroups ?? (await cgroupFacts.arg().catch(() => undefined)),
      mountTemplateFd: opts.mountTemplateFd ?? (await mountTemplate.get(opts.binary, path.dirname(opts.stateDir))),
    }),
  connectShim: (socketPath) => ShimClient.connect(socketPath),
  findShims,
  killShim: (pid) => killShim(pid),
  mountShm: (target) => mountFs('tmpfs', target, [['source', 'shm'], ['size', '64m'], ['mode', '1777']]),
  unmount: (target) => umount2(target, MNT_DETACH),
  mountPoints: async () => (await fsp.readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter(Boolean).map((l) => unescapeMountPath(l.split(' ')[4])),
  makeNetnsMountPoint,
  bindNetns,
  unbindNetns,
  removeCgroupTree: (rel) => removeCgroupTree(rel),
  cgroupChildren,
};
