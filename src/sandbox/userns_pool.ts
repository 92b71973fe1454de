// The host ids of the userns runtime handler's pods: a pool of 65536-id ranges (multiples
// of 65536 from a configured first id, as kubelet allocates for hostUsers: false), one
// range per pod, never two pods on one range. Each allocation is a durable record of its
// own (<root>/userns/<pod id>.json), written before the pod's namespace exists and removed
// after the pod record is; a range goes back to the pool only once no pod record, no
// allocation record and no process of its pod holds it.
import * as path from 'path';
import { ResourceExhausted } from '../errors';
import type { IdMapping } from '../oci/runtime_spec';
import { RecordStore } from '../store/records';

/** Ids per pod: container ids 0 to 65535, what kubelet gives a pod too. */
export const POD_RANGE_LENGTH = 65536;

/** A pod's host ids: [hostId, hostId + length). */
export interface HostIdRange {
  hostId: number;
  length: number;
}

interface AllocationRecord extends HostIdRange {
  pod: string;
  /** Milliseconds since the epoch. */
  at: number;
}

const isAllocation = (v: unknown): v is AllocationRecord => {
  const a = v as AllocationRecord;
  return !!a && typeof a.pod === 'string' && /^[a-f0-9]{64}$/.test(a.pod) && Number.isInteger(a.hostId) && a.hostId >= 0 && Number.isInteger(a.length) && a.length > 0;
};

/** The pod's user namespace mappings for a range: uids and gids alike, from container id 0. */
export function rangeMappings(r: HostIdRange): { uidMappings: IdMapping[]; gidMappings: IdMapping[] } {
  return { uidMappings: [{ containerID: 0, hostID: r.hostId, size: r.length }], gidMappings: [{ containerID: 0, hostID: r.hostId, size: r.length }] };
}

const overlaps = (a: HostIdRange, b: HostIdRange) => a.hostId < b.hostId + b.length && b.hostId < a.hostId + a.length;

export interface UsernsPoolOptions {
  /** Where the allocation records live (<root>/userns). */
  dir: string;
  /** First host id of the pool: a multiple of 65536. */
  firstHostId: number;
  /** Ranges of 65536 ids in the pool. */
  ranges: number;
  warn: (msg: string, detail?: Record<string, unknown>) => void;
}

export class UsernsPool {
  private readonly store: RecordStore<AllocationRecord>;
  /** Every range held, by pod id: allocated here, or found on disk or in a pod record. */
  private readonly held = new Map<string, HostIdRange>();
  /** Pods whose ranges were found at start-up without a pod record (settled by sweep). */
  private unclaimed: string[] = [];

  constructor(private readonly opts: UsernsPoolOptions) {
    this.store = new RecordStore(opts.dir, isAllocation, (m) => opts.warn(m));
  }

  /** The pool's ids: [first, end). */
  get bounds(): { first: number; end: number } {
    return { first: this.opts.firstHostId, end: this.opts.firstHostId + this.opts.ranges * POD_RANGE_LENGTH };
  }

  /**
   * Read the allocations back, and add the ranges the pod records hold (an allocation
   * record lost to a torn write is written again: the pod's processes run on it). An
   * allocation whose pod has no record is held until sweep() is told the pod is gone.
   */
  async init(pods: { id: string; range: HostIdRange }[]): Promise<void> {
    await this.store.init();
    const found = await this.store.all();
    for (const a of found.values()) this.held.set(a.pod, { hostId: a.hostId, length: a.length });
    for (const p of pods) {
      const a = this.held.get(p.id);
      if (a && a.hostId === p.range.hostId && a.length === p.range.length) continue;
      this.opts.warn('a pod of the userns handler had no allocation record of its range: written again', { pod: p.id, hostId: p.range.hostId });
      this.held.set(p.id, p.range);
      await this.persist(p.id, p.range);
    }
    const recorded = new Set(pods.map((p) => p.id));
    this.unclaimed = [...this.held.keys()].filter((id) => !recorded.has(id));
  }

  /** The lowest free range of the pool, held for the pod from now on (before anything is
   * written, so that two pods run at once never get the same), and recorded durably. */
  async allocate(podId: string): Promise<HostIdRange> {
    const range = this.pick();
    if (!range) throw new ResourceExhausted(`the userns pool is full: all ${this.opts.ranges} ranges of ${POD_RANGE_LENGTH} host ids from ${this.opts.firstHostId} are in use (userns.pod_ranges)`);
    this.held.set(podId, range);
    try {
      await this.persist(podId, range);
    } catch (e) {
      this.held.delete(podId);
      throw e;
    }
    return range;
  }

  private pick(): HostIdRange | undefined {
    const taken = [...this.held.values()].sort((a, b) => a.hostId - b.hostId);
    let t = 0;
    for (let k = 0; k < this.opts.ranges; k++) {
      const candidate = { hostId: this.opts.firstHostId + k * POD_RANGE_LENGTH, length: POD_RANGE_LENGTH };
      while (t < taken.length && taken[t].hostId + taken[t].length <= candidate.hostId) t++;
      if (t < taken.length && overlaps(candidate, taken[t])) continue;
      return candidate;
    }
    return undefined;
  }

  private persist(podId: string, range: HostIdRange): Promise<void> {
    return this.store.put(podId, { pod: podId, hostId: range.hostId, length: range.length, at: Date.now() });
  }

  /** The pod's range back to the pool (idempotent): its record first, then the memory. */
  async release(podId: string): Promise<boolean> {
    if (!this.held.has(podId)) return false;
    await this.store.delete(podId);
    this.held.delete(podId);
    return true;
  }

  /** The range a pod holds, if it holds one. */
  rangeOf(podId: string): HostIdRange | undefined {
    return this.held.get(podId);
  }

  /** Ranges found at start-up whose pod has no record and is not known now: the caller
   * has made sure no process of theirs runs. */
  unclaimedPods(known: (podId: string) => boolean): string[] {
    return this.unclaimed.filter((id) => !known(id) && this.held.has(id));
  }

  /** Ranges in use. */
  get size(): number {
    return this.held.size;
  }
}

/** The lines of an /etc/subuid or /etc/subgid text (name:first:count) whose ids reach into
 * [first, end): other programs (rootless containers, kubelet's getsubids) hand those out. */
export function subidOverlaps(text: string, pool: { first: number; end: number }): string[] {
  return text.split('\n').filter((line) => {
    const [, first, count] = line.trim().split(':').map(Number);
    return Number.isInteger(first) && Number.isInteger(count) && first < pool.end && pool.first < first + count;
  });
}

/** Where the allocation records live under skiffd's root. */
export const usernsPoolDir = (root: string) => path.join(root, 'userns');
