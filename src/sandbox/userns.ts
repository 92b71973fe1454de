// A pod's user namespace mappings (userns_options), checked before anything is made: the
// kernel refuses bad uid_map/gid_map lines only once the pod's namespace exists, with an
// EINVAL that names nothing.
import { InvalidArgument } from '../errors';
import { NamespaceMode, type IDMapping, type PodSandboxConfig, type UserNamespace } from '../cri/gen/cri';
import type { IdMapping } from '../oci/runtime_spec';
import { rangeMappings, type HostIdRange } from './userns_pool';

/** Lines a uid_map or gid_map may hold (Linux 4.15 on). */
export const MAX_ID_MAP_LINES = 340;
// Ids are 32-bit and 2^32-1 is the invalid id: a range must end at or below 2^32-2.
const ID_END = 2 ** 32 - 1;

function overlapping(ranges: { start: number; length: number; i: number }[]): [number, number] | undefined {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  for (let k = 1; k < sorted.length; k++) if (sorted[k].start < sorted[k - 1].start + sorted[k - 1].length) return [sorted[k - 1].i, sorted[k].i];
  return undefined;
}

/** One map (uids or gids): every range non-empty and inside the 32-bit id space, no two
 * ranges overlapping on either side, and container id 0 (the pod's root) mapped unless
 * the map is a mount's (whose ids are the file system's, not a process's). */
export function checkIdMappings(maps: IDMapping[], field: string, opts: { rootMapped: boolean } = { rootMapped: true }): void {
  if (maps.length > MAX_ID_MAP_LINES) throw new InvalidArgument(`${field}: ${maps.length} mappings, the kernel takes at most ${MAX_ID_MAP_LINES}`);
  maps.forEach((m, i) => {
    if (m.length < 1) throw new InvalidArgument(`${field}[${i}].length must be at least 1`);
    if (m.container_id + m.length > ID_END) throw new InvalidArgument(`${field}[${i}]: container ids ${m.container_id}+${m.length} overflow 2^32`);
    if (m.host_id + m.length > ID_END) throw new InvalidArgument(`${field}[${i}]: host ids ${m.host_id}+${m.length} overflow 2^32`);
  });
  for (const side of ['container_id', 'host_id'] as const) {
    const clash = overlapping(maps.map((m, i) => ({ start: m[side], length: m.length, i })));
    if (clash) throw new InvalidArgument(`${field}: [${clash[0]}] and [${clash[1]}] overlap in their ${side === 'host_id' ? 'host' : 'container'} ids`);
  }
  if (opts.rootMapped && !maps.some((m) => m.container_id === 0)) throw new InvalidArgument(`${field}: container id 0 is not mapped`);
}

/** userns_options of a pod: NODE without mappings, or POD with valid uid and gid maps. */
export function checkPodUserNamespace(userns: UserNamespace | null, field = 'config.linux.security_context.namespace_options.userns_options'): void {
  if (!userns) return;
  if (userns.mode === NamespaceMode.NODE) {
    if (userns.uids.length || userns.gids.length) throw new InvalidArgument(`${field}: mode NODE takes no mappings (got ${userns.uids.length} uid and ${userns.gids.length} gid mappings)`);
    return;
  }
  if (userns.mode !== NamespaceMode.POD) throw new InvalidArgument(`${field}: mode ${NamespaceMode[userns.mode]} is not supported for pods`);
  if (userns.uids.length === 0 || userns.gids.length === 0) throw new InvalidArgument(`${field}: mode POD needs uid and gid mappings`);
  checkIdMappings(userns.uids, `${field}.uids`);
  checkIdMappings(userns.gids, `${field}.gids`);
}

/** The OCI form (runtime-spec linux.uidMappings) of CRI mappings. */
export function ociIdMappings(maps: IDMapping[]): IdMapping[] {
  return maps.map((m) => ({ containerID: m.container_id, hostID: m.host_id, size: m.length }));
}

/** The mappings of a pod with a user namespace of its own (mode POD), else null. */
export function podIdMappings(config: PodSandboxConfig): { uidMappings: IdMapping[]; gidMappings: IdMapping[] } | null {
  const userns = config.linux?.security_context?.namespace_options?.userns_options;
  if (userns?.mode !== NamespaceMode.POD) return null;
  return { uidMappings: ociIdMappings(userns.uids), gidMappings: ociIdMappings(userns.gids) };
}

/** The mappings of a pod's own user namespace, whoever chose them: skiff (the userns
 * handler's range) or kubelet (userns_options); null when the pod has the host's. */
export function podUserns(pod: { config: PodSandboxConfig; usernsRange?: HostIdRange }): { uidMappings: IdMapping[]; gidMappings: IdMapping[] } | null {
  return pod.usernsRange ? rangeMappings(pod.usernsRange) : podIdMappings(pod.config);
}

/** A copy of a pod's mappings, for one more mount or spec to own. */
export function copyIdMappings(maps: { uidMappings: IdMapping[]; gidMappings: IdMapping[] }): { uidMappings: IdMapping[]; gidMappings: IdMapping[] } {
  return { uidMappings: maps.uidMappings.map((x) => ({ ...x })), gidMappings: maps.gidMappings.map((x) => ({ ...x })) };
}

/** The host id a container id maps to, or null when no range holds it. */
export function hostIdOf(maps: IdMapping[], id: number): number | null {
  const m = maps.find((x) => x.containerID <= id && id < x.containerID + x.size);
  return m ? m.hostID + (id - m.containerID) : null;
}

/** The host uid and gid of a pod's root (container id 0, which checkPodUserNamespace
 * requires mapped): what owns, on the host, what the pod's root makes. */
export function rootOwner(maps: { uidMappings: IdMapping[]; gidMappings: IdMapping[] }): { uid: number; gid: number } {
  const uid = hostIdOf(maps.uidMappings, 0);
  const gid = hostIdOf(maps.gidMappings, 0);
  if (uid === null || gid === null) throw new InvalidArgument('the pod user namespace does not map container id 0');
  return { uid, gid };
}
