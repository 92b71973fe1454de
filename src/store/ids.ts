// Looking objects up the way CRI clients name them: the full id, or a prefix that
// matches exactly one (crictl and critest pass truncated ids).
import { InvalidArgument, NotFound } from '../errors';

export function byIdOrPrefix<T>(all: Map<string, T>, id: string): T | undefined {
  const exact = all.get(id);
  if (exact || !id) return exact;
  let hit: T | undefined;
  for (const [k, v] of all) {
    if (!k.startsWith(id)) continue;
    if (hit) return undefined; // ambiguous
    hit = v;
  }
  return hit;
}

/** The object, or INVALID_ARGUMENT for a missing id and NOT_FOUND for an unknown one. */
export function mustFind<T>(all: Map<string, T>, id: string, field: string, what: string): T {
  if (!id) throw new InvalidArgument(`${field} is required`);
  const r = byIdOrPrefix(all, id);
  if (!r) throw new NotFound(`${what} "${id}" not found`);
  return r;
}
