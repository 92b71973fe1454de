// A container's OCI bundle around its mounted rootfs: config.json built from the CRI config,
// the image and the pod (spec.ts) with the edits of its CDI devices (cdi_edits.ts), an empty
// directory per image VOLUME, binds of the image volumes mounted beside it
// (image_volumes.ts), and, in a user-namespaced pod, the bind mount targets made in the
// rootfs beforehand.
import { promises as fsp } from 'fs';
import * as path from 'path';
import type { ContainerConfig } from '../cri/gen/cri';
import type { ImageRecord } from '../image/image_service';
import type { PodRecord } from '../sandbox/pod_registry';
import { hostIdOf, podUserns, rootOwner } from '../sandbox/userns';
import { InvalidArgument } from '../errors';
import type { IdMapping } from '../oci/runtime_spec';
import type { CdiEditSet } from './cdi';
import { applyCdiEdits, cdiHostNodes } from './cdi_edits';
import { hostDevices, statDevices } from './devices';
import type { ImageVolume } from './image_volumes';
import { APPARMOR_DEFAULT_PROFILE, AppArmorProfiles, HostLsm } from './lsm';
import type { Spec } from '../oci/runtime_spec';
import { readLocalhostProfile, seccompChoice } from './seccomp';
import { buildContainerSpec } from './spec';
import { readPasswdDb } from './user';

/** What the host allows and provides, the same for every container. */
export interface BundleHost {
  /** The lowest oom_score_adj this host lets root set. */
  minOomScoreAdj: number;
  lsm: HostLsm;
  appArmor: AppArmorProfiles;
  seccompProfileRoot?: string;
  /** What "ALL" and privileged grant: skiffd's own capabilities. */
  hostCapabilities: string[] | undefined;
  /** cri.default_pids_limit (0: off). */
  defaultPidsLimit: number;
}

export interface BundleRequest {
  id: string;
  bundle: string;
  rootfs: string;
  config: ContainerConfig;
  pod: PodRecord;
  image: ImageRecord;
  /** The image volumes mounted for the CRI mounts that name an image. */
  imageVolumes: ImageVolume[];
  /** The container edits of the CDI devices it asked for (resolveCdiDevices). */
  cdi?: CdiEditSet[];
}

/** Write the bundle's config.json (and what it points to); the spec it holds. */
export async function writeBundle(host: BundleHost, b: BundleRequest): Promise<Spec> {
  const { config, pod, image, bundle, rootfs } = b;
  const sc = config.linux?.security_context ?? null;
  const devices = await statDevices(config.devices.map((d) => d.host_path));
  const cdiNodes = await cdiHostNodes(b.cdi ?? []);
  const seccomp = sc?.privileged ? undefined : seccompChoice(sc?.seccomp ?? null, sc?.seccomp_profile_path ?? '', host.seccompProfileRoot);
  const localhostProfile = seccomp?.kind === 'localhost' ? await readLocalhostProfile(seccomp.path) : undefined;
  const appArmorProfilesLoaded = host.lsm.apparmor ? await host.appArmor.loaded() : undefined;
  // Image VOLUMEs get an empty directory of the container's own, gone with it.
  const volumes = new Map<string, string>();
  for (const [i, v] of (image.config.volumes ?? []).entries()) {
    const dir = path.join(bundle, 'volumes', String(i));
    await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
    volumes.set(v, dir);
  }
  const userNamespace = podUserns(pod) ?? undefined;
  const spec = buildContainerSpec({
    containerId: b.id,
    config,
    sandboxConfig: pod.config,
    image: image.config,
    imageName: config.image?.image || image.id,
    rootfsPath: rootfs,
    passwd: await readPasswdDb(rootfs),
    pod: {
      id: pod.id,
      namespaces: pod.namespaces,
      hostNetwork: pod.hostNetwork,
      hostsPath: pod.hostsPath,
      resolvConfPath: pod.resolvConfPath,
      hostnamePath: pod.hostnamePath,
      shmPath: pod.shmPath,
      cgroupParent: pod.cgroupParent,
      ...(userNamespace ? { userNamespace } : {}),
      // kubelet sends no mappings for the volumes of a pod whose user namespace skiff chose.
      ...(pod.usernsRange ? { idmapVolumes: true } : {}),
    },
    restrictOomScoreAdj: host.minOomScoreAdj,
    defaultPidsLimit: host.defaultPidsLimit,
    lsm: host.lsm,
    appArmorProfilesLoaded,
    hostCapabilities: host.hostCapabilities,
    hostDevices: sc?.privileged ? await hostDevices() : undefined,
    statDevice: (p) => devices.get(p),
    volumeDir: (dst) => volumes.get(dst) ?? volumes.get(dst + '/') ?? path.join(bundle, 'volumes', 'missing'),
    imageVolumeSource: (i) => b.imageVolumes.find((v) => v.mount === i)?.source,
    seccompProfileRoot: host.seccompProfileRoot,
    loadLocalhostProfile: () => localhostProfile ?? '',
  });
  if (userNamespace) checkUserMapped(spec, userNamespace);
  // CDI edits go last, on the spec as CRI and the image made it (containerd's WithCDI is its
  // last option too); their mounts are id-mapped as the pod's volumes are.
  applyCdiEdits(spec, b.cdi ?? [], (p) => cdiNodes.get(p), pod.usernsRange ? userNamespace : undefined);
  if (spec.process.apparmorProfile === APPARMOR_DEFAULT_PROFILE) await host.appArmor.ensureDefault();
  // In a user namespace the container's root cannot create mount targets where the
  // image's owner is not mapped into it: skiffd makes the bind targets first, owned by
  // the pod's root as the id-mapped image is.
  if (pod.namespaces.user) await createBindTargets(rootfs, spec.mounts, userNamespace && rootOwner(userNamespace));
  await fsp.writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec), { mode: 0o600 });
  return spec;
}

/** The container's user, group and supplemental groups must be ids of the pod's user
 * namespace: the kernel refuses the switch to any other (EINVAL, naming nothing). */
function checkUserMapped(spec: Spec, maps: { uidMappings: IdMapping[]; gidMappings: IdMapping[] }): void {
  const ranges = (m: IdMapping[]) => m.map((x) => `${x.containerID}-${x.containerID + x.size - 1}`).join(', ');
  const u = spec.process.user;
  if (hostIdOf(maps.uidMappings, u.uid) === null)
    throw new InvalidArgument(`user ${u.uid} (run_as_user, else the image's USER) is not mapped in the pod's user namespace, whose uids are ${ranges(maps.uidMappings)}`);
  for (const gid of [u.gid, ...(u.additionalGids ?? [])])
    if (hostIdOf(maps.gidMappings, gid) === null)
      throw new InvalidArgument(`group ${gid} (run_as_group, supplemental_groups or the image's) is not mapped in the pod's user namespace, whose gids are ${ranges(maps.gidMappings)}`);
}

/**
 * Create the missing targets of bind mounts inside rootfs (a directory for a directory
 * source, else an empty file). A path through a symlink is left alone: the shim
 * resolves those inside the rootfs itself.
 */
async function createBindTargets(
  rootfs: string,
  mounts: { destination: string; type?: string; source?: string; options?: string[] }[],
  owner: { uid: number; gid: number } | undefined,
): Promise<void> {
  for (const m of mounts) {
    const isBind = m.type === 'bind' || m.options?.includes('bind') || m.options?.includes('rbind');
    if (!isBind || !m.source) continue;
    const parts = m.destination.split('/').filter(Boolean);
    let cur = rootfs;
    for (const [i, part] of parts.entries()) {
      cur = path.join(cur, part);
      const st = await fsp.lstat(cur).catch(() => undefined);
      if (st?.isSymbolicLink()) break;
      if (st) continue;
      const last = i === parts.length - 1;
      const srcIsDir = last ? (await fsp.stat(m.source).catch(() => undefined))?.isDirectory() ?? true : true;
      if (srcIsDir) await fsp.mkdir(cur, { mode: 0o755 });
      else await fsp.writeFile(cur, '', { mode: 0o644, flag: 'wx' });
      if (owner) await fsp.lchown(cur, owner.uid, owner.gid);
    }
  }
}
