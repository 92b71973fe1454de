// Container stats for the CRI: CPU, memory and pids from the shim's cgroup readings,
// CPU rate from the delta between two samples, pressure (PSI) of cpu, memory and io
// where the cgroup has it, and the writable layer's usage from a walk of the
// container's upper dir, cached so that a stats call stays cheap.
import type { ContainerRecord } from '../container/container_service';
import type { ContainerStats } from '../cri/gen/cri';
import type { Reply } from '../cri/server';
import type { Snapshotter } from '../image/snapshotter';
import type { SandboxService } from '../sandbox/sandbox_service';
import type { CgroupStats } from '../shim/client';
import { ioUsage, psiStats } from './pressure';

const LAYER_CACHE_MS = 10_000;

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

  async stats(r: ContainerRecord): Promise<Reply<ContainerStats>> {
    return (await this.sample(r)).stats;
  }

  /** A container's CRI stats and the number of its processes (0 when not running). */
  async sample(r: ContainerRecord): Promise<{ stats: Reply<ContainerStats>; processes: number; raw?: CgroupStats }> {
    const out: Reply<ContainerStats> = {
      attributes: { id: r.id, metadata: r.config.metadata, labels: r.config.labels, annotations: r.config.annotations },
    };
    const [u, fsIds] = await Promise.all([this.layerUsage(r.id).catch(() => undefined), this.snapshots.filesystemIds().catch(() => undefined)]);
    const nowNs = Date.now() * 1e6;
    // The writable layer's fs_id is the container filesystem's, as ImageFsInfo names it.
    if (u) out.writable_layer = { timestamp: nowNs, fs_id: { mountpoint: fsIds?.container ?? this.snapshots.root }, used_bytes: { value: u.bytes }, inodes_used: { value: u.inodes } };
    const shim = this.sandboxes.shim(r.podId);
    if (!shim || r.state === 'exited') return { stats: out, processes: 0 };
    let s;
    try {
      s = await shim.stats({ id: r.id });
    } catch {
      return { stats: out, processes: 0 }; // the container went away while we asked
    }
    const prev = this.lastCpu.get(r.id);
    this.lastCpu.set(r.id, { ts: s.timestamp, usageNs: s.cpu.usageNs });
    const rate = prev && s.timestamp > prev.ts ? Math.round(((s.cpu.usageNs - prev.usageNs) / (s.timestamp - prev.ts)) * 1e9) : undefined;
    out.cpu = {
      timestamp: s.timestamp,
      usage_core_nano_seconds: { value: s.cpu.usageNs },
      usage_nano_cores: rate !== undefined && rate >= 0 ? { value: rate } : null,
      psi: psiStats(s.psi?.cpu),
    };
    const m = s.memory;
    out.memory = {
      timestamp: s.timestamp,
      working_set_bytes: { value: m.workingSetBytes },
      usage_bytes: { value: m.usageBytes },
      rss_bytes: { value: m.rssBytes },
      page_faults: { value: m.pageFaults },
      major_page_faults: { value: m.majorPageFaults },
      available_bytes: m.limitBytes !== null ? { value: Math.max(0, m.limitBytes - m.workingSetBytes) } : null,
      psi: psiStats(s.psi?.memory),
    };
    out.io = ioUsage(s);
    if (s.swap)
      out.swap = {
        timestamp: s.timestamp,
        swap_usage_bytes: { value: s.swap.usageBytes },
        swap_available_bytes: s.swap.limitBytes !== null ? { value: Math.max(0, s.swap.limitBytes - s.swap.usageBytes) } : null,
      };
    return { stats: out, processes: s.pids.current, raw: s };
  }
}
