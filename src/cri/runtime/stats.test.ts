// The shim's pressure and IO readings, sampled by stats/, as CRI stats and cAdvisor series:
// nanosecond totals, a missing "full" line, null (not zero) where a cgroup has no reading,
// pod pressure from the pod cgroup rather than a sum, and device names from sysfs.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ContainerRecord } from '../../container/container_service';
import type { Snapshotter } from '../../image/snapshotter';
import type { PodRecord } from '../../sandbox/pod_registry';
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { CgroupStats, Pressure, ShimClient } from '../../shim/client';
import { BlockDeviceNames } from '../../stats/block_devices';
import { ContainerStatsService } from '../../stats/container_stats';
import { PodStatsService } from '../../stats/pod_stats';
import { metricDescriptors, podMetrics, pressureSeconds } from './cadvisor_metrics';
import { ioUsage, psiStats, toContainerStats, toPodSandboxStats } from './stats';

const line = (totalUs: number, avg10 = 0.5) => ({ avg10, avg60: 0.25, avg300: 0.125, totalUs });
const both = (someUs: number, fullUs: number): Pressure => ({ some: line(someUs), full: line(fullUs) });

function cgroupStats(over: Partial<CgroupStats> = {}): CgroupStats {
  return {
    timestamp: 1_000_000,
    cpu: { usageNs: 5e9, userNs: 3e9, systemNs: 2e9 },
    memory: { usageBytes: 1, workingSetBytes: 1, limitBytes: null, rssBytes: 1, pageFaults: 1, majorPageFaults: 0, cacheBytes: 0, oomKills: 0 },
    pids: { current: 1, limit: null },
    swap: null,
    ...over,
  };
}

/** A pod p1 with one running container c1 whose shim answers with these readings. */
function fakes(container: CgroupStats, pod: CgroupStats | Error, sysDevBlock?: string) {
  const shim = { stats: async () => container, podStats: async () => (pod instanceof Error ? Promise.reject(pod) : pod) } as unknown as ShimClient;
  const sandboxes = { shim: (id: string) => (id === 'p1' ? shim : undefined) } as unknown as SandboxService;
  const snapshots = { root: '/snap', filesystemIds: () => Promise.resolve({ image: '/snap', container: '/snap' }), containerUsage: () => Promise.reject(new Error('no layer')) } as unknown as Snapshotter;
  const podRecord = { id: 'p1', state: 'ready', hostNetwork: true, cgroupParent: '/kubepods/pod1', config: { metadata: { name: 'web', namespace: 'ns', uid: 'u', attempt: 0 }, labels: {}, annotations: {} } } as unknown as PodRecord;
  const ctr = { id: 'c1', podId: 'p1', state: 'running', startedAt: 0, imageRef: 'img', config: { metadata: { name: 'app', attempt: 0 }, image: { image: 'busybox' }, labels: {}, annotations: {} } } as unknown as ContainerRecord;
  const containers = new ContainerStatsService(sandboxes, snapshots);
  const pods = new PodStatsService(containers, sandboxes);
  const devices = new BlockDeviceNames(sysDevBlock);
  return {
    podRecord,
    ctr,
    containerStats: async (r: ContainerRecord) => toContainerStats(await containers.sample(r)),
    podStats: async (p: PodRecord, cs: ContainerRecord[]) => toPodSandboxStats(await pods.sample(p, cs)),
    podMetrics: async (p: PodRecord, cs: ContainerRecord[]) => podMetrics(await pods.sample(p, cs), devices),
  };
}

describe('PSI and IO in stats', () => {
  it('converts a pressure reading to PsiStats with totals in nanoseconds', () => {
    assert.deepEqual(psiStats(both(1500, 20)), { Some: { Total: 1_500_000, Avg10: 0.5, Avg60: 0.25, Avg300: 0.125 }, Full: { Total: 20_000, Avg10: 0.5, Avg60: 0.25, Avg300: 0.125 } });
  });

  it('keeps Full null for a some-only file and the whole PsiStats null without a reading', () => {
    assert.deepEqual(psiStats({ some: line(7), full: null }), { Some: { Total: 7000, Avg10: 0.5, Avg60: 0.25, Avg300: 0.125 }, Full: null });
    assert.equal(psiStats(null), null);
    assert.equal(psiStats(undefined), null);
    assert.equal(pressureSeconds({ some: line(2_999_999), full: null }, 'some'), 2);
    assert.equal(pressureSeconds({ some: line(1), full: null }, 'full'), null);
  });

  it('gives IoUsage only where there is io pressure', () => {
    assert.equal(ioUsage(cgroupStats({ psi: { cpu: both(1, 1), memory: both(1, 1), io: null } })), null);
    assert.equal(ioUsage(cgroupStats({ psi: null })), null);
    assert.equal(ioUsage(cgroupStats()), null, 'a shim from before PSI sends no psi field');
    assert.deepEqual(ioUsage(cgroupStats({ psi: { cpu: null, memory: null, io: both(4, 3) } }))?.psi?.Full?.Total, 3000);
  });

  it('fills container stats cpu/memory/io pressure from the container cgroup, null where it has none', async () => {
    const withPsi = fakes(cgroupStats({ psi: { cpu: { some: line(10), full: null }, memory: both(20, 5), io: both(30, 6) } }), cgroupStats());
    const s = await withPsi.containerStats(withPsi.ctr);
    assert.equal(s.cpu?.psi?.Some?.Total, 10_000);
    assert.equal(s.cpu?.psi?.Full, null);
    assert.equal(s.memory?.psi?.Full?.Total, 5000);
    assert.equal(s.io?.psi?.Some?.Total, 30_000);
    assert.equal(s.io?.timestamp, 1_000_000);

    const v1 = fakes(cgroupStats({ psi: null, io: { devices: [] } }), cgroupStats({ psi: null }));
    const n = await v1.containerStats(v1.ctr);
    assert.equal(n.cpu?.psi, null);
    assert.equal(n.memory?.psi, null);
    assert.equal(n.io, null);
  });

  it("takes pod pressure from the pod cgroup's own reading, not a sum of the containers'", async () => {
    const f = fakes(cgroupStats({ psi: { cpu: both(100, 50), memory: both(100, 50), io: both(100, 50) } }), cgroupStats({ psi: { cpu: both(70, 0), memory: both(60, 1), io: { some: line(40), full: null } } }));
    const s = await f.podStats(f.podRecord, [f.ctr]);
    assert.equal(s.linux?.cpu?.psi?.Some?.Total, 70_000);
    assert.equal(s.linux?.memory?.psi?.Full?.Total, 1000);
    assert.equal(s.linux?.io?.psi?.Some?.Total, 40_000);
    assert.equal(s.linux?.io?.psi?.Full, null);
    assert.equal(s.linux?.containers![0].cpu?.psi?.Some?.Total, 100_000);

    const noPodCgroup = fakes(cgroupStats({ psi: { cpu: both(1, 1), memory: null, io: null } }), new Error('the pod has no cgroup'));
    const t = await noPodCgroup.podStats(noPodCgroup.podRecord, [noPodCgroup.ctr]);
    assert.equal(t.linux?.cpu?.psi, null);
    assert.equal(t.linux?.io, null);
  });

  describe('cAdvisor series', () => {
    let sys: string;
    before(() => {
      sys = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-sysdevblock-'));
      fs.symlinkSync('../../devices/pci0000:00/0000:00:05.0/virtio2/block/vda', path.join(sys, '254:0'));
      fs.symlinkSync('../../devices/virtual/block/loop3', path.join(sys, '7:3'));
    });
    after(() => fs.rmSync(sys, { recursive: true, force: true }));

    it('names devices /dev/<name> from sysfs and gives no name to an unknown device', async () => {
      const names = new BlockDeviceNames(sys);
      assert.equal(await names.name(254, 0), '/dev/vda');
      assert.equal(await names.name(7, 3), '/dev/loop3');
      assert.equal(await names.name(8, 0), '');
    });

    it('describes the PSI and block IO series with the labels they carry', async () => {
      const d = new Map(metricDescriptors().map((x) => [x.name!, x.label_keys!]));
      for (const r of ['cpu', 'memory', 'io'])
        for (const k of ['waiting', 'stalled']) assert.deepEqual(d.get(`container_pressure_${r}_${k}_seconds_total`), ['container', 'id', 'image', 'name', 'namespace', 'pod']);
      for (const n of ['container_fs_reads_bytes_total', 'container_fs_writes_bytes_total', 'container_fs_reads_total', 'container_fs_writes_total'])
        assert.deepEqual(d.get(n), ['container', 'id', 'image', 'name', 'namespace', 'pod', 'device']);

      const io = { devices: [{ major: 254, minor: 0, readBytes: 4096, writeBytes: 1 << 20, reads: 1, writes: 16 }, { major: 8, minor: 0, readBytes: 1, writeBytes: 1, reads: 1, writes: 1 }] };
      const f = fakes(cgroupStats({ psi: { cpu: { some: line(3_500_000), full: null }, memory: both(0, 0), io: both(2_000_000, 1_000_000) }, io }), cgroupStats({ psi: null, io: null }), sys);
      const pm = await f.podMetrics(f.podRecord, [f.ctr]);
      const series = pm.container_metrics![0].metrics!;
      for (const m of series) assert.equal(m.label_values!.length, d.get(m.name!)!.length, `${m.name}: one value per label key`);
      const value = (name: string) => series.filter((m) => m.name === name).map((m) => [m.label_values!.at(-1), m.value!.value]);
      assert.deepEqual(value('container_pressure_cpu_waiting_seconds_total'), [['web', 3]], 'whole seconds');
      assert.deepEqual(value('container_pressure_cpu_stalled_seconds_total'), [], 'no full line, no stalled series');
      assert.deepEqual(value('container_pressure_io_stalled_seconds_total'), [['web', 1]]);
      assert.deepEqual(value('container_fs_writes_bytes_total'), [['/dev/vda', 1 << 20]], 'the unnamed 8:0 is left out');
      assert.deepEqual(value('container_fs_reads_total'), [['/dev/vda', 1]]);
      assert.equal(series.find((m) => m.name === 'container_fs_reads_bytes_total')!.label_values!.slice(0, 4).join(' '), 'app /kubepods/pod1/c1 busybox c1');
      assert.deepEqual(pm.metrics, [], 'a pod cgroup without readings gives no pod series');
    });

    it('gives the pod its own PSI and IO series (container "") from the pod cgroup', async () => {
      const f = fakes(cgroupStats(), cgroupStats({ psi: { cpu: both(9e6, 0), memory: null, io: null }, io: { devices: [{ major: 7, minor: 3, readBytes: 0, writeBytes: 512, reads: 0, writes: 1 }] } }), sys);
      const pm = await f.podMetrics(f.podRecord, [f.ctr]);
      const byName = new Map(pm.metrics!.map((m) => [m.name, m]));
      assert.equal(byName.get('container_pressure_cpu_waiting_seconds_total')?.value?.value, 9);
      assert.deepEqual(byName.get('container_pressure_cpu_waiting_seconds_total')?.label_values, ['', '/kubepods/pod1', '', 'p1', 'ns', 'web']);
      assert.ok(!byName.has('container_pressure_memory_waiting_seconds_total'), 'no memory reading, no series');
      assert.deepEqual(byName.get('container_fs_writes_bytes_total')?.label_values?.at(-1), '/dev/loop3');
      assert.ok(!pm.container_metrics![0].metrics!.some((m) => m.name!.startsWith('container_pressure_')), 'a shim from before PSI: no container PSI series');
    });
  });
});
