// Per-object locks: calls on one pod or container run one at a time, calls on different
// objects run concurrently (no global lock on the request path); and a shared/exclusive lock.
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** Many shared holders at once, or one exclusive holder: pod network set-ups share the
 * network config; a change of the config waits for them and holds new ones back. */
export class SharedLock {
  private holders = 0;
  private exclusiveTail: Promise<void> | null = null;
  private drained: (() => void) | null = null;

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusiveTail) await this.exclusiveTail;
    this.holders++;
    try {
      return await fn();
    } finally {
      if (--this.holders === 0) this.drained?.();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusiveTail) await this.exclusiveTail;
    let release!: () => void;
    this.exclusiveTail = new Promise<void>((r) => (release = r));
    try {
      if (this.holders > 0) await new Promise<void>((r) => (this.drained = r));
      this.drained = null;
      return await fn();
    } finally {
      this.exclusiveTail = null;
      release();
    }
  }
}
