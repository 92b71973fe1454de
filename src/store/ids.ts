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

/** INVALID_ARGUMENT for an empty id: also where an unknown id is not an error (Stop and
 * Remove), '' names nothing and is a mistake of the caller. */
export function requireId(id: string, field: string): void {
  if (!id) throw new InvalidArgument(`${field} is required`);
}

/** The object, or INVALID_ARGUMENT for a missing id and NOT_FOUND for an unknown one. */
export function mustFind<T>(all: Map<string, T>, id: string, field: string, what: string): T {
  requireId(id, field);
  const r = byIdOrPrefix(all, id);
  if (!r) throw new NotFound(`${what} "${id}" not found`);
  return r;
}
