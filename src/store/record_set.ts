// The records of one kind of object (pods, containers) as a service holds them: durable
// (one file each, see records.ts) and in memory, found by id or unique prefix, with names
// reserved while an object lives, a lock per id, the change each save makes, and an index
// by pod.
import { AlreadyExists } from '../errors';
import { byIdOrPrefix, mustFind, requireId } from './ids';
import { KeyedLock } from './keyed_lock';
import { RecordStore } from './records';

/** What a pod or container went through, as GetContainerEvents reports it. */
export type LifecycleChange = 'created' | 'started' | 'stopped' | 'deleted';

/** The change a record's state move is; a pod is created and started in one step. */
export function lifecycleChange(from: string | undefined, to: string): LifecycleChange | undefined {
  if (from === to) return undefined;
  if (to === 'created') return 'created';
  if (to === 'running' || (to === 'ready' && from === undefined)) return 'started';
  if (to === 'exited' || to === 'notready') return 'stopped';
  return undefined;
}

/** Nanoseconds since the epoch, as records and CRI timestamps hold them. */
export const nowNs = () => Date.now() * 1e6;

export type ChangeListener<R> = (change: LifecycleChange, r: R) => void;

export interface RecordKind<R> {
  /** Where the records are kept, one file each. */
  dir: string;
  validate: (v: unknown) => v is R;
  warn: (msg: string) => void;
  /** The request field that names an id, and what the object is called, for errors:
   * `container_id is required`, `container "ab" not found`. */
  idField: string;
  what: string;
  /** The pod a record belongs to, for inPod. */
  podOf?: (r: R) => string;
}

export class RecordSet<R extends { id: string; state: string }> {
  /** One operation at a time per id. */
  readonly lock = new KeyedLock();
  private readonly store: RecordStore<R>;
  private readonly byId = new Map<string, R>();
  private readonly names = new Map<string, string>();
  private readonly nameById = new Map<string, string>();
  private readonly byPod = new Map<string, Set<string>>();
  private readonly listeners = new Set<ChangeListener<R>>();
  private changes = 0;

  constructor(private readonly kind: RecordKind<R>) {
    this.store = new RecordStore(kind.dir, kind.validate, kind.warn);
  }

  /** Read the records back (torn ones are reported and skipped); `nameOf` gives the name
   * each one holds. */
  async load(nameOf: (r: R) => string | undefined): Promise<R[]> {
    await this.store.init();
    for (const r of (await this.store.all()).values()) {
      this.byId.set(r.id, r);
      this.index(r);
      const name = nameOf(r);
      if (name) this.claim(name, r.id);
    }
    this.changes++;
    return this.list();
  }

  /** A number that changes whenever list() would (a record saved, put back, deleted or
   * loaded): the CRI lists keep their encoded replies while it stays the same. */
  get generation(): number {
    return this.changes;
  }

  /** A record by full id or unique id prefix. */
  get(id: string): R | undefined {
    return byIdOrPrefix(this.byId, id);
  }

  /** The record, or INVALID_ARGUMENT for an empty id and NOT_FOUND for an unknown one. */
  mustGet(id: string): R {
    return mustFind(this.byId, id, this.kind.idField, this.kind.what);
  }

  /** Stop and Remove: run `fn` on the record under its id's lock. An unknown id (removed
   * already, or never made) is nothing to do; an empty one is INVALID_ARGUMENT. */
  async ifKnown(id: string, fn: (r: R) => Promise<void>): Promise<void> {
    requireId(id, this.kind.idField);
    const found = this.get(id);
    if (!found) return;
    await this.lock.run(found.id, async () => {
      const r = this.byId.get(found.id);
      if (r) await fn(r);
    });
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  list(): R[] {
    return [...this.byId.values()];
  }

  /** The records of one pod, in the order of list(). */
  inPod(podId: string): R[] {
    return [...(this.byPod.get(podId) ?? [])].map((id) => this.byId.get(id)!);
  }

  /** Hold `name` for `id` until the record is deleted or the name released; ALREADY_EXISTS
   * while another holds it. */
  reserveName(name: string, id: string): void {
    const clash = this.names.get(name);
    if (clash) throw new AlreadyExists(`${this.kind.what} name "${name}" is reserved by ${clash}`);
    this.claim(name, id);
  }

  releaseName(id: string): void {
    const name = this.nameById.get(id);
    this.nameById.delete(id);
    if (name !== undefined && this.names.get(name) === id) this.names.delete(name);
  }

  private claim(name: string, id: string): void {
    this.names.set(name, id);
    this.nameById.set(id, name);
  }

  /** Write the record durably; readers see it at once. Should the write fail, the record
   * in memory is the one before. Listeners are told the change it makes. `sync: false`
   * for a change that a crash of the host would bring about anyway (see records.ts): it
   * survives a crash of skiffd, not one of the host. */
  async save(r: R, o: { sync?: boolean } = {}): Promise<void> {
    const old = this.byId.get(r.id);
    this.byId.set(r.id, r);
    this.changes++;
    this.index(r);
    try {
      await this.store.put(r.id, r, o);
    } catch (e) {
      if (this.byId.get(r.id) === r) {
        if (old) this.byId.set(r.id, old);
        else this.forget(r);
        this.changes++;
      }
      throw e;
    }
    const change = lifecycleChange(old?.state, r.state);
    if (!old && change !== 'created') this.emit('created', r);
    if (change) this.emit(change, r);
  }

  /** Delete the record and release its name. */
  async delete(r: R): Promise<void> {
    await this.store.delete(r.id);
    this.forget(r);
    this.releaseName(r.id);
    this.emit('deleted', r);
  }

  /** Told of every record created, started, stopped and deleted; returns the unsubscribe. */
  onChange(listener: ChangeListener<R>): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  private emit(change: LifecycleChange, r: R): void {
    for (const l of this.listeners) l(change, r);
  }

  private index(r: R): void {
    const pod = this.kind.podOf?.(r);
    if (pod === undefined) return;
    let ids = this.byPod.get(pod);
    if (!ids) this.byPod.set(pod, (ids = new Set()));
    ids.add(r.id);
  }

  private forget(r: R): void {
    this.byId.delete(r.id);
    this.changes++;
    const pod = this.kind.podOf?.(r);
    const ids = pod === undefined ? undefined : this.byPod.get(pod);
    ids?.delete(r.id);
    if (ids?.size === 0) this.byPod.delete(pod!);
  }
}
