// Work over many objects with a bound on how much of it runs at once. skiffd's start reads
// a record per pod and container and makes a round trip to every pod's shim: one at a time,
// 500 pods wait on each other's round trips (seconds); all at once, they would open 500
// files and sockets in one go.
/** fn on every item, at most `limit` at a time, in the items' order of start. After a
 * failure no new item is started and onFailure is told (to stop those under way); they
 * finish, then the first error is thrown. */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
  onFailure: (e: unknown) => void = () => undefined,
): Promise<void> {
  let next = 0;
  let failed = false;
  let first: unknown;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (e) {
        if (failed) continue;
        first = e;
        failed = true;
        onFailure(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  if (failed) throw first;
}

/** fn of every item, at most `limit` at a time; the results in the items' order. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  await forEachLimited(items, limit, async (item, i) => {
    out[i] = await fn(item, i);
  });
  return out;
}
