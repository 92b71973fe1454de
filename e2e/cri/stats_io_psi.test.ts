// Pressure (PSI) and block IO in CRI stats and cAdvisor metrics of a real skiffd, checked
// against what this host's kernel offers: the test reads the container's and the pod's
// cgroup files itself and expects the fields filled exactly where those files exist
// (null, never zero, where not), and IO byte counters that grow when the container
// writes and reads a block device with O_DIRECT.
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { ContainerConfig, Metric, PodSandboxConfig, PsiData, PsiStats } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { skipUnderUserns, USERNS_HANDLER } from '../fixtures/handler';
import { until } from '../fixtures/kubelet';
import { startTestNode, TestNode } from '../fixtures/node';
import type { TestSkiffd } from '../fixtures/skiffd';

const CG = '/sys/fs/cgroup';
const RESOURCES = ['cpu', 'memory', 'io'] as const;
type Resource = (typeof RESOURCES)[number];

/** The cgroup2 directory of a cgroup path: /sys/fs/cgroup itself on a v2 host, the
 * unified mount on a hybrid one; undefined on a v1-only host. */
function v2Dir(cgroupPath: string): string | undefined {
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' '));
  const v2 = mounts.find((f) => f[4]?.startsWith(CG) && f[f.indexOf('-') + 1] === 'cgroup2')?.[4];
  return v2 ? path.join(v2, cgroupPath) : undefined;
}

/** A *.pressure file as the test reads it: line kind to its total (microseconds). */
function readPressure(dir: string | undefined, r: Resource): Map<string, number> | undefined {
  if (!dir) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, `${r}.pressure`), 'utf8');
  } catch {
    return undefined;
  }
  return new Map(text.split('\n').filter(Boolean).map((l) => [l.split(' ')[0], Number(/total=(\d+)/.exec(l)?.[1])]));
}

/** PsiStats against the file read before and after it: null where there is no file,
 * else Some (and Full exactly where the file has a full line) between the two readings. */
function checkPsi(what: string, got: Reply<PsiStats> | null | undefined, before: Map<string, number> | undefined, after: Map<string, number> | undefined): void {
  if (!after) {
    assert.equal(got ?? null, null, `${what}: no pressure file, so no PSI`);
    return;
  }
  assert.ok(got, `${what}: the cgroup has a pressure file, so PSI is reported`);
  const within = (kind: string, d: Reply<PsiData> | null | undefined) => {
    const t = d?.Total ?? -1;
    assert.ok(t >= (before?.get(kind) ?? 0) * 1000 && t <= after.get(kind)! * 1000, `${what} ${kind}: ${t} ns within the file's ${before?.get(kind)}..${after.get(kind)} us`);
    for (const a of [d!.Avg10, d!.Avg60, d!.Avg300]) assert.ok(typeof a === 'number' && a >= 0 && a <= 100, `${what} ${kind}: average ${a}`);
  };
  within('some', got.Some);
  if (after.has('full')) within('full', got.Full);
  else assert.equal(got.Full ?? null, null, `${what}: the file has no full line`);
}

/** Per device "MAJ:MIN" of the cgroup's IO source as the test reads it: v1 blkio throttle
 * files or cgroup2 io.stat; undefined where the cgroup has neither. */
function readDeviceIo(cgroupPath: string): Map<string, { readBytes: number; writeBytes: number; reads: number; writes: number }> | undefined {
  const out = new Map<string, { readBytes: number; writeBytes: number; reads: number; writes: number }>();
  const entry = (dev: string) => out.get(dev) ?? out.set(dev, { readBytes: 0, writeBytes: 0, reads: 0, writes: 0 }).get(dev)!;
  const v1 = path.join(CG, 'blkio', cgroupPath);
  if (fs.existsSync(path.join(v1, 'blkio.throttle.io_service_bytes_recursive'))) {
    for (const [file, rf, wf] of [['io_service_bytes_recursive', 'readBytes', 'writeBytes'], ['io_serviced_recursive', 'reads', 'writes']] as const)
      for (const [dev, op, n] of fs.readFileSync(path.join(v1, `blkio.throttle.${file}`), 'utf8').split('\n').map((l) => l.split(' ')))
        if (op === 'Read' || op === 'Write') entry(dev)[op === 'Read' ? rf : wf] = Number(n);
    return out;
  }
  const stat = v2Dir(cgroupPath) && path.join(v2Dir(cgroupPath)!, 'io.stat');
  if (!stat || !fs.existsSync(stat)) return undefined;
  for (const l of fs.readFileSync(stat, 'utf8').split('\n').filter(Boolean)) {
    const [dev, ...kv] = l.split(' ');
    const f = Object.fromEntries(kv.map((x) => x.split('=')));
    Object.assign(entry(dev), { readBytes: Number(f.rbytes), writeBytes: Number(f.wbytes), reads: Number(f.rios), writes: Number(f.wios) });
  }
  return out;
}

describe('CRI stats: pressure (PSI) and block IO (skiffd over gRPC)', function () {
  this.timeout(180_000);
  let node: TestNode;
  let skiffd: TestSkiffd;
  let loop: { dev: string; file: string; majMin: string } | undefined;
  let seq = 0;

  const runPod = async (over: Reply<PodSandboxConfig> = {}) => {
    const n = ++seq;
    const config: Reply<PodSandboxConfig> = { metadata: { name: `psi${n}`, namespace: 'e2e-psi', uid: `psi-${n}`, attempt: 0 }, hostname: `psi${n}`, linux: {}, ...over };
    const { pod_sandbox_id } = await skiffd.client.runtime('RunPodSandbox', { config });
    return { id: pod_sandbox_id, config };
  };
  const startCtr = async (pod: { id: string; config: Reply<PodSandboxConfig> }, name: string, over: Reply<ContainerConfig> = {}) => {
    const config: Reply<ContainerConfig> = { metadata: { name, attempt: 0 }, image: { image: 'busybox' }, command: ['sleep', '1000'], ...over };
    const { container_id } = await skiffd.client.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config });
    await skiffd.client.runtime('StartContainer', { container_id });
    return container_id;
  };
  const exec = async (id: string, cmd: string[]) => {
    const r = await skiffd.client.runtime('ExecSync', { container_id: id, cmd, timeout: 60 });
    assert.equal(r.exit_code, 0, `${cmd.join(' ')}: ${Buffer.from(r.stderr).toString()}`);
  };
  const metricsOf = async (podId: string) => {
    const { pod_metrics } = await skiffd.client.runtime('ListPodSandboxMetrics', {});
    return pod_metrics.find((p) => p.pod_sandbox_id === podId);
  };
  const descriptors = async () => new Map((await skiffd.client.runtime('ListMetricDescriptors', {})).descriptors.map((d) => [d.name, d.label_keys]));

  before(async () => {
    node = await startTestNode();
    skiffd = node.skiffd;
  });
  after(async () => {
    await node?.stop();
    if (loop) {
      try {
        execFileSync('losetup', ['-d', loop.dev]);
      } finally {
        fs.rmSync(loop.file, { force: true });
      }
    }
  });

  it('reports cpu, memory and io PSI of a container and of its pod where the cgroup has pressure files, null where not', async () => {
    const c = skiffd.client;
    const pod = await runPod();
    const id = await startCtr(pod, 'spin', { command: ['sh', '-c', 'while :; do :; done'] });
    const ctrCg = `${skiffd.cgroupParent}/skiff-pod-${pod.id}/${id}`;
    const podCg = `${skiffd.cgroupParent}/skiff-pod-${pod.id}`;
    const facts = { container: v2Dir(ctrCg), pod: v2Dir(podCg) };
    // On a hybrid host the container has a unified cgroup only where that hierarchy holds a controller.
    for (const k of ['container', 'pod'] as const) if (facts[k] && !fs.existsSync(facts[k]!)) facts[k] = undefined;
    console.log(`      host: container cgroup2 dir ${facts.container ?? 'none'}; cpu.pressure ${readPressure(facts.container, 'cpu') ? 'present' : 'absent'}; /proc/pressure ${fs.existsSync('/proc/pressure') ? 'present' : 'absent'}`);

    const before = Object.fromEntries(RESOURCES.map((r) => [r, readPressure(facts.container, r)]));
    const podBefore = Object.fromEntries(RESOURCES.map((r) => [r, readPressure(facts.pod, r)]));
    const st = (await c.runtime('ContainerStats', { container_id: id })).stats!;
    const ps = (await c.runtime('PodSandboxStats', { pod_sandbox_id: pod.id })).stats!.linux!;
    const after = Object.fromEntries(RESOURCES.map((r) => [r, readPressure(facts.container, r)]));
    const podAfter = Object.fromEntries(RESOURCES.map((r) => [r, readPressure(facts.pod, r)]));

    checkPsi('container cpu', st.cpu?.psi, before.cpu, after.cpu);
    checkPsi('container memory', st.memory?.psi, before.memory, after.memory);
    checkPsi('container io', st.io?.psi, before.io, after.io);
    assert.equal(!!st.io, !!after.io, 'IoUsage exactly where io.pressure exists');
    checkPsi('pod cpu', ps.cpu?.psi, podBefore.cpu, podAfter.cpu);
    checkPsi('pod memory', ps.memory?.psi, podBefore.memory, podAfter.memory);
    checkPsi('pod io', ps.io?.psi, podBefore.io, podAfter.io);
    assert.equal(!!ps.containers[0].cpu?.psi, !!st.cpu?.psi, "the pod's container stats carry the container's own PSI");

    // The same figures as cAdvisor's counters, in whole seconds, with the descriptors' labels.
    const keys = await descriptors();
    const pm = (await metricsOf(pod.id))!;
    const series = pm.container_metrics.find((m) => m.container_id === id)!.metrics;
    for (const m of [...series, ...pm.metrics]) assert.equal(m.label_values.length, keys.get(m.name)?.length, `${m.name}: one value per label key`);
    const fileAfter = Object.fromEntries(RESOURCES.map((r) => [r, readPressure(facts.container, r)]));
    for (const r of RESOURCES)
      for (const [kind, name] of [['some', 'waiting'], ['full', 'stalled']]) {
        const m = series.find((x) => x.name === `container_pressure_${r}_${name}_seconds_total`);
        const file = fileAfter[r]?.get(kind);
        assert.equal(!!m, file !== undefined, `container_pressure_${r}_${name}_seconds_total exactly where ${r}.pressure has a ${kind} line`);
        if (m) assert.ok(m.value!.value <= Math.floor(file! / 1e6), `${m.name}: ${m.value!.value} s, file ${file} us`);
      }
    const podSeries = pm.metrics.find((m) => m.name === 'container_pressure_cpu_waiting_seconds_total');
    assert.equal(!!podSeries, !!podAfter.cpu, 'the pod has its own PSI series where its cgroup has cpu.pressure');
    if (podSeries) assert.deepEqual(podSeries.label_values.slice(0, 4), ['', podCg, '', pod.id]);
  });

  it("reports the pod PSI of kubelet's pod cgroup (the infra cgroup's parent)", async () => {
    const parent = `${skiffd.cgroupParent}/kubepods/podpsi`;
    const pod = await runPod({ linux: { cgroup_parent: parent } });
    await startCtr(pod, 'idle');
    let dir = v2Dir(parent);
    if (dir && !fs.existsSync(dir)) dir = undefined;
    const before = Object.fromEntries(RESOURCES.map((r) => [r, readPressure(dir, r)]));
    const ps = (await skiffd.client.runtime('PodSandboxStats', { pod_sandbox_id: pod.id })).stats!.linux!;
    const after = Object.fromEntries(RESOURCES.map((r) => [r, readPressure(dir, r)]));
    checkPsi('kubelet pod cgroup cpu', ps.cpu?.psi, before.cpu, after.cpu);
    checkPsi('kubelet pod cgroup memory', ps.memory?.psi, before.memory, after.memory);
    checkPsi('kubelet pod cgroup io', ps.io?.psi, before.io, after.io);
  });

  it('counts the bytes and operations a container reads and writes with O_DIRECT, per device, as container_fs_* series', async function () {
    // A block device of the test's own: a loop device over a 16 MiB file.
    const image = path.join(skiffd.dir, 'psi-disk.img');
    fs.writeFileSync(image, Buffer.alloc(0));
    fs.truncateSync(image, 16 << 20);
    const dev = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
    loop = { dev, file: image, majMin: fs.readFileSync(`/sys/block/${path.basename(dev)}/dev`, 'utf8').trim() };

    const pod = await runPod();
    const id = await startCtr(pod, 'disk', { devices: [{ container_path: '/dev/xvdpsi', host_path: dev, permissions: 'rw' }] });
    if (USERNS_HANDLER) {
      // The host's node is bound there (no mknod in a user namespace), its owner the host's
      // root, whom the pod's user namespace does not map; devtmpfs cannot be id-mapped.
      const [major, minor] = loop.majMin.split(':');
      const ls = await skiffd.client.runtime('ExecSync', { container_id: id, cmd: ['ls', '-l', '/dev/xvdpsi'], timeout: 60 });
      assert.match(Buffer.from(ls.stdout).toString(), new RegExp(`^b.*\\s${major},\\s+${minor}\\s`));
      skipUnderUserns(this, "a host block device of the host's root (0660) cannot be opened by a pod's root that is not the host's");
    }
    const ctrCg = `${skiffd.cgroupParent}/skiff-pod-${pod.id}/${id}`;
    const v1 = fs.existsSync(path.join(CG, 'blkio', ctrCg, 'blkio.throttle.io_service_bytes'));
    if (v1)
      // Kernels from 6.10 on keep v1 throttle counters only for devices some cgroup has a
      // throttling rule for; a rule of 0 (no limit) on the container's own cgroup makes
      // the kernel count this device, as a blkio rule set by an operator would.
      fs.writeFileSync(path.join(CG, 'blkio', ctrCg, 'blkio.throttle.read_bps_device'), `${loop.majMin} 0`);
    const source = readDeviceIo(ctrCg);
    console.log(`      host: IO source ${v1 ? 'v1 blkio throttle files' : source ? 'cgroup2 io.stat' : 'none'}; device ${dev} (${loop.majMin})`);

    const keys = await descriptors();
    for (const n of ['container_fs_reads_bytes_total', 'container_fs_writes_bytes_total', 'container_fs_reads_total', 'container_fs_writes_total'])
      assert.deepEqual(keys.get(n), ['container', 'id', 'image', 'name', 'namespace', 'pod', 'device'], `${n} descriptor`);
    const series = async () => {
      const pm = (await metricsOf(pod.id))!;
      const ms = pm.container_metrics.find((m) => m.container_id === id)!.metrics;
      for (const m of ms) assert.equal(m.label_values.length, keys.get(m.name)?.length, `${m.name}: one value per label key`);
      const of = (name: string, device: string) => ms.find((m: Reply<Metric>) => m.name === name && m.label_values?.at(-1) === device)?.value?.value;
      return { ms, of };
    };

    if (!source) {
      const { ms } = await series();
      assert.ok(!ms.some((m) => /^container_fs_(reads|writes)/.test(m.name)), 'no IO source, no IO series');
      return;
    }
    const start = await series();
    const w0 = start.of('container_fs_writes_bytes_total', dev) ?? 0;
    const wops0 = start.of('container_fs_writes_total', dev) ?? 0;
    const r0 = start.of('container_fs_reads_bytes_total', dev) ?? 0;

    await exec(id, ['dd', 'if=/dev/zero', 'of=/dev/xvdpsi', 'bs=64k', 'count=16', 'oflag=direct']);
    await exec(id, ['dd', 'if=/dev/xvdpsi', 'of=/dev/null', 'bs=64k', 'count=8', 'iflag=direct']);

    const grown = await until('the IO series to grow', async () => {
      const s = await series();
      const w = s.of('container_fs_writes_bytes_total', dev) ?? 0;
      const r = s.of('container_fs_reads_bytes_total', dev) ?? 0;
      return w > w0 && r > r0 && s;
    });
    assert.ok((grown.of('container_fs_writes_total', dev) ?? 0) > wops0, 'write operations grew');
    assert.ok((grown.of('container_fs_reads_total', dev) ?? 0) > 0, 'read operations counted');
    // Against the cgroup file read afterwards: the series never run ahead of the kernel's counters.
    const file = readDeviceIo(ctrCg)!.get(loop.majMin)!;
    assert.ok(file, `the cgroup file lists ${loop.majMin}`);
    assert.ok(grown.of('container_fs_writes_bytes_total', dev)! <= file.writeBytes && grown.of('container_fs_reads_bytes_total', dev)! <= file.readBytes, `series within ${JSON.stringify(file)}`);
    // Every device the cgroup file names that sysfs knows has its series, and no other device does.
    const named = [...readDeviceIo(ctrCg)!.keys()].filter((d) => fs.existsSync(`/sys/dev/block/${d}`)).map((d) => `/dev/${path.basename(fs.readlinkSync(`/sys/dev/block/${d}`))}`);
    const inSeries = new Set(grown.ms.filter((m) => m.name === 'container_fs_writes_bytes_total').map((m) => m.label_values.at(-1)));
    assert.deepEqual([...inSeries].sort(), named.sort());
  });
});
