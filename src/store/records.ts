// Durable JSON records, one file each: written atomically (temp file, fsync,
// rename, fsync of the directory) and read back defensively: a torn or
// unreadable record is reported and skipped, never a crash loop.
import { randomBytes } from 'crypto';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { mapLimited } from './parallel';

/** Record files read at once at start-up (hundreds of pods, twice as many containers). */
const READ_CONCURRENCY = 64;

export class RecordStore<T> {
  constructor(
    readonly dir: string,
    private readonly validate: (v: unknown) => v is T,
    private readonly warn: (msg: string) => void = (m) => process.emitWarning(m),
  ) {}

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    // Temp files of a write the process did not finish.
    for (const n of await fsp.readdir(this.dir)) if (n.startsWith('.tmp-')) await fsp.rm(path.join(this.dir, n), { force: true });
  }

  private file(key: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$/.test(key) || key.includes('..')) throw new Error(`bad record key "${key}"`);
    return path.join(this.dir, `${key}.json`);
  }

  /** Write a record atomically; `sync: false` skips the fsyncs (see writeFileAtomic). */
  async put(key: string, value: T, o: { sync?: boolean } = {}): Promise<void> {
    await writeFileAtomic(this.file(key), JSON.stringify(value), 0o600, o);
  }

  async delete(key: string): Promise<void> {
    await fsp.rm(this.file(key), { force: true });
  }

  /** Every valid record; bad ones are reported through warn and skipped. */
  async all(): Promise<Map<string, T>> {
    const names = (await fsp.readdir(this.dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    const read = await mapLimited(names, READ_CONCURRENCY, async (n) => {
      try {
        const v: unknown = JSON.parse(await fsp.readFile(path.join(this.dir, n), 'utf8'));
        if (!this.validate(v)) throw new Error('unexpected shape');
        return v;
      } catch (e) {
        this.warn(`skipping record ${path.join(this.dir, n)}: ${(e as Error).message}`);
        return undefined;
      }
    });
    const out = new Map<string, T>();
    names.forEach((n, i) => {
      const v = read[i];
      if (v !== undefined) out.set(n.slice(0, -'.json'.length), v);
    });
    return out;
  }
}

/** Replace `file` so a reader sees the old or the new content, never a torn one, and
 * the new content survives a crash once this returns: temp file beside it (a leftover
 * is named `.tmp-*`), fsync, rename, fsync of the directory. With `sync: false` the
 * content survives a crash of the process (the page cache outlives it), not one of the
 * host: for what a host crash makes moot anyway. */
export async function writeFileAtomic(file: string, data: string, mode: number, o: { sync?: boolean } = {}): Promise<void> {
  const sync = o.sync ?? true;
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
  const fh = await fsp.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  if (!sync) return;
  const dh = await fsp.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
