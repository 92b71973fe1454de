// Container samples: the shim's readings of a container's cgroup (CPU, memory, pids,
// pressure, IO), the CPU rate from the delta between two samples, and the writable layer's
// usage from a walk of the container's upper dir, cached so that a stats call stays cheap.
// cri/runtime/stats.ts turns a sample into the CRI's ContainerStats.
import type { ContainerRecord } from '../container/container_service';
import type { Snapshotter } from '../image/snapshotter';
import type { SandboxService } from '../sandbox/sandbox_service';
import type { CgroupStats } from '../shim/client';

const LAYER_CACHE_MS = 10_000;

/** What the container's writable layer takes of the container filesystem. */
export interface LayerUsage {
  /** Nanoseconds since the epoch. */
  timestamp: number;
  /** The container filesystem's mount point, as ImageFsInfo names it. */
  mountpoint: string;
  bytes: number;
  inodes: number;
}

export interface ContainerSample {
  container: ContainerRecord;
  /** null where the layer could not be measured. */
  writableLayer: LayerUsage | null;
  /** The cgroup's readings; null unless the container runs (and answered). */
  cgroup: CgroupStats | null;
  /** CPU use since the previous sample in nanocores; null for a first sample, or a counter that went back. */
  cpuNanoCores: number | null;
}

export class ContainerStatsService {
  private readonly lastCpu = new Map<string, { ts: number; usageNs: number }>();
  private readonly layer = new Map<string, { at: number; value: Promise<{ bytes: number; inodes: number }> }>();

  constructor(
    private readonly sandboxes: SandboxService,
    private readonly snapshots: Snapshotter,
  ) {}

  private layerUsage(id: string): Promise<{ bytes: number; inodes: number }> {
    const now = Date.now();
    const c = this.layer.get(id);
    if (c && now - c.at < LAYER_CACHE_MS) return c.value;
    const value = this.snapshots.containerUsage(id);
    this.layer.set(id, { at: now, value });
    value.catch(() => this.layer.delete(id));
    return value;
  }

  /** Forget what is kept for a removed container. */
  forget(id: string): void {
    this.lastCpu.delete(id);
    this.layer.delete(id);
  }

  async sample(r: ContainerRecord): Promise<ContainerSample> {
    const [u, fsIds] = await Promise.all([this.layerUsage(r.id).catch(() => undefined), this.snapshots.filesystemIds().catch(() => undefined)]);
    const out: ContainerSample = {
      container: r,
      // The writable layer's fs_id is the container filesystem's, as ImageFsInfo names it.
      writableLayer: u ? { timestamp: Date.now() * 1e6, mountpoint: fsIds?.container ?? this.snapshots.root, bytes: u.bytes, inodes: u.inodes } : null,
      cgroup: null,
      cpuNanoCores: null,
    };
    const shim = this.sandboxes.shim(r.podId);
    if (!shim || r.state === 'exited') return out;
    let s: CgroupStats;
    try {
      s = await shim.stats({ id: r.id });
    } catch {
      return out; // the container went away while we asked
    }
    const prev = this.lastCpu.get(r.id);
    this.lastCpu.set(r.id, { ts: s.timestamp, usageNs: s.cpu.usageNs });
    const rate = prev && s.timestamp > prev.ts ? Math.round(((s.cpu.usageNs - prev.usageNs) / (s.timestamp - prev.ts)) * 1e9) : undefined;
    return { ...out, cgroup: s, cpuNanoCores: rate !== undefined && rate >= 0 ? rate : null };
  }
}
