// Pressure stall information for the CRI: the shim's readings of a cgroup's *.pressure
// files (percentages and microseconds) as PsiStats (Total in nanoseconds). Absent
// readings stay null: kubelet must not see a made-up zero stall.
import type { IoUsage, PsiData, PsiStats } from '../cri/gen/cri';
import type { Reply } from '../cri/server';
import type { CgroupStats, Pressure, PressureLine } from '../shim/client';

function psiData(l: PressureLine): Reply<PsiData> {
  return { Total: l.totalUs * 1000, Avg10: l.avg10, Avg60: l.avg60, Avg300: l.avg300 };
}

/** PsiStats of one resource; null without a reading, Full null where the file has no "full" line. */
export function psiStats(p: Pressure | null | undefined): Reply<PsiStats> | null {
  if (!p) return null;
  return { Some: psiData(p.some), Full: p.full ? psiData(p.full) : null };
}

/** IoUsage carries only io pressure: null where the cgroup has none. */
export function ioUsage(s: CgroupStats): Reply<IoUsage> | null {
  const psi = psiStats(s.psi?.io);
  return psi ? { timestamp: s.timestamp, psi } : null;
}

/** A pressure total in whole seconds, as cAdvisor's container_pressure_* counters (CRI values are integers). */
export function pressureSeconds(p: Pressure | null | undefined, line: 'some' | 'full'): number | null {
  const l = p?.[line];
  return l ? Math.floor(l.totalUs / 1e6) : null;
}
