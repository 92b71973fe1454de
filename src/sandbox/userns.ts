// A pod's user namespace mappings (userns_options), checked before anything is made: the
// kernel refuses bad uid_map/gid_map lines only once the pod's namespace exists, with an
// EINVAL that names nothing.
import { InvalidArgument } from '../errors';
import { NamespaceMode, type IDMapping, type UserNamespace } from '../cri/gen/cri';

/** Lines a uid_map or gid_map may hold (Linux 4.15 on). */
export const MAX_ID_MAP_LINES = 340;
const ID_SPACE = 2 ** 32;

function overlapping(ranges: { start: number; length: number; i: number }[]): [number, number] | undefined {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  for (let k = 1; k < sorted.length; k++) if (sorted[k].start < sorted[k - 1].start + sorted[k - 1].length) return [sorted[k - 1].i, sorted[k].i];
  return undefined;
}

/** One map (uids or gids): every range non-empty and inside the 32-bit id space, no two
 * ranges overlapping on either side, and container id 0 (the pod's root) mapped. */
export function checkIdMappings(maps: IDMapping[], field: string): void {
  if (maps.length > MAX_ID_MAP_LINES) throw new InvalidArgument(`${field}: ${maps.length} mappings, the kernel takes at most ${MAX_ID_MAP_LINES}`);
  maps.forEach((m, i) => {
    if (m.length < 1) throw new InvalidArgument(`${field}[${i}].length must be at least 1`);
    if (m.container_id + m.length > ID_SPACE) throw new InvalidArgument(`${field}[${i}]: container ids ${m.container_id}+${m.length} overflow 2^32`);
    if (m.host_id + m.length > ID_SPACE) throw new InvalidArgument(`${field}[${i}]: host ids ${m.host_id}+${m.length} overflow 2^32`);
  });
  for (const side of ['container_id', 'host_id'] as const) {
    const clash = overlapping(maps.map((m, i) => ({ start: m[side], length: m.length, i })));
    if (clash) throw new InvalidArgument(`${field}: [${clash[0]}] and [${clash[1]}] overlap in their ${side === 'host_id' ? 'host' : 'container'} ids`);
  }
  if (!maps.some((m) => m.container_id === 0)) throw new InvalidArgument(`${field}: container id 0 is not mapped`);
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
