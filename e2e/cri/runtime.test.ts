// The CRI RuntimeService of a real skiffd, over gRPC: pods, containers, ExecSync, status
// codes, security contexts, bad input and recovery after skiffd is killed.
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { CriCallError } from '../../src/cri/client';
import type { ContainerConfig, PodSandboxConfig } from '../../src/cri/gen/cri';
import { CgroupDriver, ContainerState, NamespaceMode, PodSandboxState } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { startTestNode, TestNode } from '../fixtures/node';
import { parsePrometheus } from '../fixtures/prometheus';
import { TestNetwork } from '../fixtures/network';
import { statusCode } from '../fixtures/grpc';
import { TestSkiffd } from '../fixtures/skiffd';
import { CriPod, CriPods } from '../fixtures/cri_pods';
import { USERNS_HANDLER } from '../fixtures/handler';
import { until } from '../fixtures/kubelet';

const code = statusCode;
const OK = 0;
const INVALID_ARGUMENT = 3;
const DEADLINE_EXCEEDED = 4;
const NOT_FOUND = 5;
const ALREADY_EXISTS = 6;
const UNAVAILABLE = 14;


describe('CRI RuntimeService (skiffd over gRPC)', function () {
  this.timeout(120_000);
  let node: TestNode;
  let skiffd: TestSkiffd;
  let net: TestNetwork;

  let cri: CriPods;
  const podConfig = (over: Reply<PodSandboxConfig> = {}) => cri.podConfig(over);
  const runPod = (over: Reply<PodSandboxConfig> = {}) => cri.runPod(over);
  const ctrConfig = (name: string, over: Reply<ContainerConfig> = {}) => cri.ctrConfig(name, over);
  const startCtr = (pod: CriPod, name: string, over: Reply<ContainerConfig> = {}) => cri.startCtr(pod, name, over);
  const exec = (id: string, cmd: string[]) => cri.exec(id, cmd);
  const waitState = (id: string, state: ContainerState) =>
    until(`container ${id} to reach ${ContainerState[state]}`, async () => {
      const st = await skiffd.client.runtime('ContainerStatus', { container_id: id });
      return st.status?.state === state && st.status;
    });

  before(async () => {
    node = await startTestNode({
      latest: { Cmd: ['sh'], Env: ['PATH=/bin', 'FROM_IMAGE=1'] },
      user: { Cmd: ['sh'], Env: ['PATH=/bin'], User: 'app', StopSignal: 'SIGUSR1' },
    });
    ({ skiffd, net } = node);
    cri = new CriPods(skiffd, { prefix: 'pod', namespace: 'e2e', uidPrefix: 'uid-' });
  });
  after(async () => {
    await node?.stop();
  });

  it('reports RuntimeReady and NetworkReady', async () => {
    const st = await skiffd.client.runtime('Status', {});
    const cond = Object.fromEntries(st.status!.conditions.map((c) => [c.type, c.status]));
    assert.deepEqual(cond, { RuntimeReady: true, NetworkReady: true });
    assert.equal((await skiffd.client.runtime('RuntimeConfig', {})).linux?.cgroup_driver, CgroupDriver.CGROUPFS);
  });

  it('runs a pod with an IP on the bridge, its hostname, and reports it', async () => {
    const pod = await runPod({ labels: { app: 'web' }, annotations: { a: 'b' } });
    const st = await skiffd.client.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true });
    assert.equal(st.status?.state, PodSandboxState.SANDBOX_READY);
    assert.ok(st.status?.network?.ip.startsWith(net.prefix + '.'), st.status?.network?.ip);
    assert.deepEqual(st.status?.labels, { app: 'web' });
    assert.deepEqual(st.status?.metadata, pod.config.metadata);
    assert.ok(JSON.parse(st.info.info).pid > 0);
    const id = await startCtr(pod, 'web');
    const r = await exec(id, ['sh', '-c', 'hostname; cat /etc/hostname; ip -4 addr show eth0 | grep -o "inet [0-9.]*"']);
    assert.equal(r.out, `${pod.config.hostname}\n${pod.config.hostname}\ninet ${st.status?.network?.ip}\n`);
    assert.equal(st.status?.linux?.namespaces?.options?.network, NamespaceMode.POD);
  });

  it('reserves pod and container names: the second gets ALREADY_EXISTS', async () => {
    const pod = await runPod();
    assert.equal(await code(skiffd.client.runtime('RunPodSandbox', { config: pod.config })), ALREADY_EXISTS);
    const cfg = ctrConfig('dup');
    await skiffd.client.runtime('CreateContainer', { pod_sandbox_id: pod.id, config: cfg, sandbox_config: pod.config });
    assert.equal(await code(skiffd.client.runtime('CreateContainer', { pod_sandbox_id: pod.id, config: cfg, sandbox_config: pod.config })), ALREADY_EXISTS);
  });

  it('merges the image config with the CRI config and logs in the CRI format', async () => {
    const pod = await runPod();
    const id = await startCtr(pod, 'env', { command: ['sh', '-c', 'echo "$FROM_IMAGE $MINE $(pwd)"; echo oops >&2'], envs: [{ key: 'MINE', value: Buffer.from('x') }], working_dir: '/tmp' });
    const st = await waitState(id, ContainerState.CONTAINER_EXITED);
    assert.equal(st.exit_code, 0);
    assert.equal(st.reason, 'Completed');
    assert.ok(st.finished_at >= st.started_at && st.started_at >= st.created_at && st.created_at > 0);
    const log = fs.readFileSync(path.join(pod.config.log_directory!, 'env.log'), 'utf8').trim().split('\n');
    assert.equal(log.length, 2);
    assert.match(log.find((l) => l.includes(' stdout '))!, /^\S+Z stdout F 1 x \/tmp$/);
    assert.match(log.find((l) => l.includes(' stderr '))!, /^\S+Z stderr F oops$/);
  });

  it('reports a non-zero exit as Error with its code', async () => {
    const pod = await runPod();
    const id = await startCtr(pod, 'fail', { command: ['sh', '-c', 'exit 3'] });
    const st = await waitState(id, ContainerState.CONTAINER_EXITED);
    assert.equal(st.exit_code, 3);
    assert.equal(st.reason, 'Error');
  });

  it('runs ExecSync with stdout, stderr and exit code, and times it out', async () => {
    const pod = await runPod();
    const id = await startCtr(pod, 'ex');
    assert.deepEqual(await exec(id, ['sh', '-c', 'echo out; echo err >&2; exit 3']), { out: 'out\n', err: 'err\n', code: 3 });
    // A command that outlives the test: only the timeout can end the call, and it kills it.
    assert.equal(await code(skiffd.client.runtime('ExecSync', { container_id: id, cmd: ['sleep', '600'], timeout: 1 })), DEADLINE_EXCEEDED);
    assert.ok(!(await exec(id, ['ps', '-o', 'args'])).out.split('\n').includes('sleep 600'), 'the timed-out command was killed');
    assert.equal(await code(skiffd.client.runtime('ExecSync', { container_id: id, cmd: [], timeout: 1 })), INVALID_ARGUMENT);
  });

  it("answers a call its pod's shim dies under with UNAVAILABLE, then reports the pod not ready", async () => {
    const c = skiffd.client;
    const pod = await runPod();
    try {
      const id = await startCtr(pod, 'orphaned');
      const pid = (JSON.parse((await c.runtime('ContainerStatus', { container_id: id, verbose: true })).info.info) as { pid: number }).pid;
      const call = code(c.runtime('ExecSync', { container_id: id, cmd: ['sh', '-c', 'touch /tmp/exec-running; sleep 60'], timeout: 0 }));
      await until('the exec running', async () => fs.existsSync(`/proc/${pid}/root/tmp/exec-running`));
      process.kill(Number(fs.readFileSync(path.join(skiffd.state, 'pods', pod.id, 'shim', 'shim.pid'), 'utf8')), 'SIGKILL');
      assert.equal(await call, UNAVAILABLE, 'the call cut off by the lost shim connection');
      await until('the pod reported not ready', async () => (await c.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id })).status?.state === PodSandboxState.SANDBOX_NOTREADY);
      await until('the container reported exited', async () => (await c.runtime('ContainerStatus', { container_id: id })).status?.state === ContainerState.CONTAINER_EXITED);
    } finally {
      await c.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    }
  });

  it("stops with the image's STOPSIGNAL, then SIGKILL after the timeout", async () => {
    const pod = await runPod();
    // The image stops with SIGUSR1, which this process reports and survives.
    const id = await startCtr(pod, 'sig', { image: { image: 'busybox:user' }, command: ['sh', '-c', 'trap "echo got-usr1" USR1; echo trapped; while true; do sleep 0.1; done'] });
    const log = path.join(pod.config.log_directory!, 'sig.log');
    await until('the shell to trap SIGUSR1', async () => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('trapped'));
    // A lower bound: a busy machine only makes the stop slower.
    const t = Date.now();
    await skiffd.client.runtime('StopContainer', { container_id: id, timeout: 1 });
    assert.ok(Date.now() - t >= 900, 'waited for the timeout');
    const st = await waitState(id, ContainerState.CONTAINER_EXITED);
    assert.equal(st.exit_code, 137);
    assert.match(fs.readFileSync(log, 'utf8'), /got-usr1/);
    await skiffd.client.runtime('StopContainer', { container_id: id, timeout: 1 });
  });

  it('sends the stop signal again when the init had no handler for it yet', async () => {
    const pod = await runPod();
    // PID 1 is a shell without a TERM handler for its first second: the kernel drops a
    // SIGTERM sent then. The program it execs next exits 0 on TERM.
    const id = await startCtr(pod, 'late', { command: ['sh', '-c', 'sleep 1; exec sh -c "trap \\"exit 0\\" TERM; while true; do sleep 0.1; done"'] });
    await skiffd.client.runtime('StopContainer', { container_id: id, timeout: 30 });
    const st = await waitState(id, ContainerState.CONTAINER_EXITED);
    assert.equal(st.exit_code, 0, 'exited through its TERM trap, not SIGKILL');
  });

  it('lists pods and containers with id, state, pod and label filters', async () => {
    const c = skiffd.client;
    const pod = await runPod({ labels: { tier: 'list' } });
    const a = await startCtr(pod, 'la', { labels: { k: 'a' } });
    const { container_id: b } = await c.runtime('CreateContainer', { pod_sandbox_id: pod.id, config: ctrConfig('lb', { labels: { k: 'b' } }), sandbox_config: pod.config });
    const pods = await c.runtime('ListPodSandbox', { filter: { label_selector: { tier: 'list' } } });
    assert.deepEqual(pods.items.map((p) => p.id), [pod.id]);
    assert.deepEqual((await c.runtime('ListPodSandbox', { filter: { id: pod.id.slice(0, 12) } })).items.map((p) => p.id), [pod.id]);
    const ids = async (filter: object) => (await c.runtime('ListContainers', { filter })).containers.map((x) => x.id).sort();
    assert.deepEqual(await ids({ pod_sandbox_id: pod.id }), [a, b].sort());
    assert.deepEqual(await ids({ pod_sandbox_id: pod.id, state: { state: ContainerState.CONTAINER_RUNNING } }), [a]);
    assert.deepEqual(await ids({ pod_sandbox_id: pod.id, state: { state: ContainerState.CONTAINER_CREATED } }), [b]);
    assert.deepEqual(await ids({ label_selector: { k: 'b' } }), [b]);
    assert.deepEqual(await ids({ id: a.slice(0, 10) }), [a]);
    const listed = (await c.runtime('ListContainers', { filter: { id: a } })).containers[0];
    assert.equal(listed.pod_sandbox_id, pod.id);
    assert.match(listed.image_ref, /^docker\.io\/library\/busybox@sha256:/);
  });

  it('stops and removes pods idempotently, unknown ids included, leaving nothing behind', async () => {
    const c = skiffd.client;
    const pod = await runPod();
    const id = await startCtr(pod, 'gone');
    await c.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    await c.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    assert.equal((await c.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id })).status?.state, PodSandboxState.SANDBOX_NOTREADY);
    assert.equal((await c.runtime('ContainerStatus', { container_id: id })).status?.state, ContainerState.CONTAINER_EXITED);
    await c.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    await c.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    assert.equal(await code(c.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id })), NOT_FOUND);
    assert.equal(await code(c.runtime('ContainerStatus', { container_id: id })), NOT_FOUND);
    assert.ok(!fs.existsSync(path.join(skiffd.state, 'pods', pod.id)));
    assert.ok(!fs.existsSync(path.join(skiffd.state, 'containers', id)));
    assert.ok(!fs.existsSync(path.join(skiffd.state, 'netns', pod.id)));
    assert.ok(!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(pod.id));
    for (const call of [
      c.runtime('StopPodSandbox', { pod_sandbox_id: 'f'.repeat(64) }),
      c.runtime('RemovePodSandbox', { pod_sandbox_id: 'f'.repeat(64) }),
      c.runtime('StopContainer', { container_id: 'f'.repeat(64), timeout: 1 }),
      c.runtime('RemoveContainer', { container_id: 'f'.repeat(64) }),
    ])
      assert.equal(await code(call), OK);
  });

  it('answers bad input with INVALID_ARGUMENT or NOT_FOUND and leaves no state', async () => {
    const c = skiffd.client;
    const pod = await runPod();
    const before = fs.readdirSync(path.join(skiffd.state, 'containers')).length;
    const create = (config: Reply<ContainerConfig>, podId = pod.id) => code(c.runtime('CreateContainer', { pod_sandbox_id: podId, config, sandbox_config: pod.config }));
    assert.equal(await code(c.runtime('RunPodSandbox', {})), INVALID_ARGUMENT);
    assert.equal(await code(c.runtime('RunPodSandbox', { config: { metadata: { name: 'x' } } })), INVALID_ARGUMENT);
    assert.equal(await code(c.runtime('RunPodSandbox', { config: podConfig(), runtime_handler: 'nope' })), INVALID_ARGUMENT);
    assert.equal(await code(c.runtime('RunPodSandbox', { config: podConfig({ linux: { sysctls: { 'kernel.hostname': 'x' } } }) })), INVALID_ARGUMENT);
    assert.equal(await code(c.runtime('RunPodSandbox', { config: podConfig({ linux: { sysctls: { 'net.ipv4.ip_forward': '1+kernel.x=1' } } }) })), INVALID_ARGUMENT);
    assert.equal(await code(c.runtime('PodSandboxStatus', { pod_sandbox_id: 'nope' })), NOT_FOUND);
    assert.equal(await create(ctrConfig('x'), 'f'.repeat(64)), NOT_FOUND);
    assert.equal(await create({ image: { image: 'busybox' } }), INVALID_ARGUMENT);
    assert.equal(await create(ctrConfig('x', { image: { image: 'nothere' } })), NOT_FOUND);
    assert.equal(await create(ctrConfig('x', { log_path: '../../etc/evil.log' })), INVALID_ARGUMENT);
    assert.equal(await create(ctrConfig('x', { mounts: [{ container_path: 'rel', host_path: '/tmp' }] })), INVALID_ARGUMENT);
    assert.equal(await create(ctrConfig('x', { mounts: [{ container_path: '/a', host_path: '/tmp/../etc' }] })), INVALID_ARGUMENT);
    assert.equal(await create(ctrConfig('x', { linux: { security_context: { run_as_user: { value: 2 ** 32 } } } })), INVALID_ARGUMENT);
    assert.equal(await create(ctrConfig('x', { linux: { security_context: { run_as_group: { value: 1 } } } })), INVALID_ARGUMENT);
    assert.equal(await create(ctrConfig('x', { linux: { security_context: { run_as_username: 'nobody-here' } } })), INVALID_ARGUMENT);
    assert.equal(await create(ctrConfig('x', { linux: { security_context: { capabilities: { add_capabilities: ['CAP_FLY'] } } } })), INVALID_ARGUMENT);
    assert.equal(await create(ctrConfig('x', { linux: { security_context: { privileged: true } } })), INVALID_ARGUMENT);
    assert.equal(await create(ctrConfig('x', { command: ['/no/such/binary'] })), NOT_FOUND, 'the shim finds no such executable');
    assert.equal(fs.readdirSync(path.join(skiffd.state, 'containers')).length, before, 'no bundle left by a failed create');
    assert.equal((await c.runtime('ListContainers', { filter: { pod_sandbox_id: pod.id } })).containers.length, 0);
    assert.equal(await code(c.runtime('StartContainer', { container_id: 'nope' })), NOT_FOUND);
    assert.equal(await code(c.runtime('ContainerStatus', { container_id: '' })), INVALID_ARGUMENT);
  });

  it('applies the container security context: user, groups, caps, read-only rootfs', async () => {
    const pod = await runPod();
    const user = await startCtr(pod, 'user', { image: { image: 'busybox:user' } });
    assert.equal((await exec(user, ['id', '-u'])).out, '1000\n');
    assert.deepEqual((await exec(user, ['id', '-G'])).out.trim().split(' ').sort(), ['1000', '2000']);
    const st = await skiffd.client.runtime('ContainerStatus', { container_id: user });
    assert.deepEqual(st.status?.user?.linux, { uid: 1000, gid: 1000, supplemental_groups: [1000, 2000] });
    const sc = await startCtr(pod, 'sc', {
      linux: { security_context: { run_as_user: { value: 0 }, supplemental_groups: [1234], readonly_rootfs: true, capabilities: { drop_capabilities: ['ALL'], add_capabilities: ['NET_ADMIN'] } } },
    });
    assert.match((await exec(sc, ['id', '-G'])).out, /\b1234\b/);
    assert.match((await exec(sc, ['grep', 'CapEff', '/proc/self/status'])).out, /CapEff:\s+0000000000001000\n/);
    assert.notEqual((await exec(sc, ['touch', '/x'])).code, 0, 'rootfs is read-only');
    assert.equal((await exec(sc, ['touch', '/dev/shm/x'])).code, 0, '/dev/shm is writable');
  });

  it('applies seccomp RuntimeDefault, and none for a nil profile', async () => {
    const pod = await runPod();
    const def = await startCtr(pod, 'sd', { linux: { security_context: { seccomp: { profile_type: 0 } } } });
    assert.match((await exec(def, ['grep', 'Seccomp:', '/proc/self/status'])).out, /Seccomp:\s+2/);
    const none = await startCtr(pod, 'sn', {});
    assert.match((await exec(none, ['grep', 'Seccomp:', '/proc/self/status'])).out, /Seccomp:\s+0/);
  });

  it('runs host-network pods in the host network namespace', async () => {
    if (USERNS_HANDLER) {
      // The handler's documented refusal instead: the host's network is not guarded by a user namespace.
      const config = podConfig({ linux: { security_context: { namespace_options: { network: NamespaceMode.NODE } } } });
      const err = await skiffd.client.runtime('RunPodSandbox', { config }).then(() => undefined, (e: CriCallError) => e);
      assert.equal(err?.code, INVALID_ARGUMENT, err?.details);
      assert.match(err.details, new RegExp(`^runtime handler "${USERNS_HANDLER}" runs every pod in a user namespace of its own: config\\.linux\\.security_context\\.namespace_options\\.network NODE \\(the host's network\\) is refused`));
      return;
    }
    const pod = await runPod({ linux: { security_context: { namespace_options: { network: NamespaceMode.NODE } } } });
    const id = await startCtr(pod, 'hostnet', { linux: { security_context: { namespace_options: { network: NamespaceMode.NODE } } } });
    const inside = (await exec(id, ['readlink', '/proc/self/ns/net'])).out.trim();
    assert.equal(inside, fs.readlinkSync('/proc/self/ns/net'));
    assert.equal((await skiffd.client.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id })).status?.network?.ip, '');
  });

  it('shares the pod PID namespace when asked (POD), and not by default', async () => {
    const pod = await runPod({ linux: { security_context: { namespace_options: { pid: NamespaceMode.POD } } } });
    const podPid = { linux: { security_context: { namespace_options: { pid: NamespaceMode.POD } } } };
    const a = await startCtr(pod, 'pa', podPid);
    const b = await startCtr(pod, 'pb', podPid);
    assert.equal((await exec(a, ['readlink', '/proc/self/ns/pid'])).out, (await exec(b, ['readlink', '/proc/self/ns/pid'])).out);
    assert.equal((await exec(a, ['ps', '-o', 'args'])).out.split('\n').filter((l) => l === 'sleep 1000').length, 2, 'each sees the other');
    const pod2 = await runPod();
    const c = await startCtr(pod2, 'pc');
    assert.match((await exec(c, ['ps', '-o', 'pid,args'])).out, /\n\s*1 sleep 1000\n/, 'its own PID namespace: the command is PID 1');
  });

  it('updates container resources live', async () => {
    const pod = await runPod();
    const id = await startCtr(pod, 'res', { linux: { resources: { memory_limit_in_bytes: 64 << 20 } } });
    await skiffd.client.runtime('UpdateContainerResources', { container_id: id, linux: { memory_limit_in_bytes: 96 << 20, cpu_quota: 50000, cpu_period: 100000 } });
    const st = await skiffd.client.runtime('ContainerStatus', { container_id: id });
    assert.equal(st.status?.resources?.linux?.memory_limit_in_bytes, 96 << 20);
    const cg = fs.readFileSync(`/proc/${JSON.parse((await skiffd.client.runtime('ContainerStatus', { container_id: id, verbose: true })).info.info).pid}/cgroup`, 'utf8');
    const mem = cg.split('\n').find((l) => /:memory:/.test(l) || l.startsWith('0::'))!.split(':')[2];
    const file = fs.existsSync(`/sys/fs/cgroup/memory${mem}/memory.limit_in_bytes`) ? `/sys/fs/cgroup/memory${mem}/memory.limit_in_bytes` : `/sys/fs/cgroup${mem}/memory.max`;
    assert.equal(fs.readFileSync(file, 'utf8').trim(), String(96 << 20));
  });

  it('reports container stats: CPU use and rate, memory, writable layer; lists them by pod', async () => {
    const c = skiffd.client;
    const pod = await runPod();
    const busy = await startCtr(pod, 'busy', { command: ['sh', '-c', 'dd if=/dev/zero of=/big bs=1M count=2 2>/dev/null; while :; do :; done'] });
    const idle = await startCtr(pod, 'idle');
    // On a busy machine the shell gets what the scheduler gives it, when it gives it: sample
    // until its CPU use has grown from one sample to the next and its 2 MiB file shows (the
    // layer's size is cached for a while).
    const sample = async () => (await c.runtime('ContainerStats', { container_id: busy })).stats!;
    let last = await sample();
    const [s1, s2] = await until('the CPU use of a spinning shell to grow between two samples, and its 2 MiB file to count', async () => {
      const prev = last;
      last = await sample();
      return last.cpu!.usage_core_nano_seconds!.value > prev.cpu!.usage_core_nano_seconds!.value && last.writable_layer!.used_bytes!.value >= 2 << 20 && [prev, last];
    });
    assert.equal(s2.attributes?.id, busy);
    assert.ok(s2.cpu!.usage_core_nano_seconds!.value > s1.cpu!.usage_core_nano_seconds!.value);
    // A rate, not a share of a core.
    assert.ok(s2.cpu!.usage_nano_cores!.value > 0, `a spinning shell uses CPU: ${s2.cpu!.usage_nano_cores!.value}`);
    assert.ok(s2.memory!.working_set_bytes!.value > 0);
    assert.ok(s2.writable_layer!.used_bytes!.value >= 2 << 20, 'the 2 MiB file counts');
    const list = await c.runtime('ListContainerStats', { filter: { pod_sandbox_id: pod.id } });
    assert.deepEqual(list.stats.map((x) => x.attributes?.id).sort(), [busy, idle].sort());
    assert.equal(await code(c.runtime('ContainerStats', { container_id: 'nope' })), NOT_FOUND);
    await c.runtime('StopContainer', { container_id: busy, timeout: 0 });
  });

  it("gives kubelet pod and container metrics under cAdvisor's names (ListMetricDescriptors, ListPodSandboxMetrics)", async () => {
    const c = skiffd.client;
    const { descriptors } = await c.runtime('ListMetricDescriptors', {});
    const keys = new Map(descriptors.map((d) => [d.name, d.label_keys]));
    for (const n of ['container_cpu_usage_seconds_total', 'container_memory_working_set_bytes', 'container_network_receive_bytes_total', 'container_spec_memory_limit_bytes', 'container_fs_usage_bytes'])
      assert.ok(keys.has(n), `descriptor ${n}`);
    const pod = await runPod({ labels: { metrics: 'yes' } });
    const busy = await startCtr(pod, 'burn', { command: ['sh', '-c', 'while :; do :; done'], linux: { resources: { memory_limit_in_bytes: 128 << 20 } } });
    const mem = await startCtr(pod, 'fill', { command: ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=24 2>/dev/null; sleep 1000'] });
    await exec(mem, ['ping', '-c', '2', '-i', '0.2', '-W', '1', `${net.gateway}`]);
    // CRI metric values are integers: wait (however busy the machine) until the spinning
    // shell has a whole second of CPU to show.
    const pm = await until('a whole second of CPU for the spinning shell', async () => {
      const { pod_metrics } = await c.runtime('ListPodSandboxMetrics', {});
      const p = pod_metrics.find((x) => x.pod_sandbox_id === pod.id);
      assert.ok(p, 'the pod is listed');
      const burn = p.container_metrics.find((cm) => cm.container_id === busy)?.metrics.find((m) => m.name === 'container_cpu_usage_seconds_total');
      return (burn?.value?.value ?? 0) >= 1 && p;
    });
    const all = [...pm.metrics, ...pm.container_metrics.flatMap((x) => x.metrics)];
    for (const m of all) assert.equal(m.label_values.length, keys.get(m.name)?.length, `${m.name}: one value per label key`);
    const of = (id: string, name: string) => {
      const x = pm.container_metrics.find((cm) => cm.container_id === id)!.metrics.find((m) => m.name === name)!;
      assert.ok(x, `${name} of ${id}`);
      return { value: x.value!.value, labels: Object.fromEntries(keys.get(name)!.map((k, i) => [k, x.label_values[i]])) };
    };
    const cpu = of(busy, 'container_cpu_usage_seconds_total');
    assert.ok(cpu.value >= 1, `a spinning shell used a second of CPU: ${cpu.value}`);
    assert.deepEqual({ container: cpu.labels.container, pod: cpu.labels.pod, namespace: cpu.labels.namespace, name: cpu.labels.name }, { container: 'burn', pod: pod.config.metadata!.name, namespace: 'e2e', name: busy });
    assert.equal(of(busy, 'container_spec_memory_limit_bytes').value, 128 << 20);
    assert.ok(of(mem, 'container_memory_working_set_bytes').value >= 24 << 20, '24 MiB of shm counts');
    assert.ok(of(mem, 'container_processes').value >= 1);
    const rx = pm.metrics.find((m) => m.name === 'container_network_receive_bytes_total' && m.label_values.at(-1) === 'eth0');
    assert.ok(rx && rx.value!.value > 0, 'eth0 received the ping replies');
    // v1 accounts swap with memsw files; cgroup2's memory controller always does.
    const v2Controllers = fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? fs.readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8') : '';
    const swapAccounted = fs.existsSync('/sys/fs/cgroup/memory/memory.memsw.usage_in_bytes') || v2Controllers.split(/\s+/).includes('memory');
    const st = (await c.runtime('ContainerStats', { container_id: mem })).stats!;
    assert.equal(!!st.swap, swapAccounted, 'swap stats where the host accounts swap');
    if (st.swap) assert.equal(typeof st.swap.swap_usage_bytes?.value, 'number');
    await c.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    assert.ok(!(await c.runtime('ListPodSandboxMetrics', {})).pod_metrics.some((p) => p.pod_sandbox_id === pod.id), 'a stopped pod has no metrics');
  });

  it('makes the pod cgroup with the pod resources plus overhead when kubelet names none', async () => {
    const c = skiffd.client;
    const MiB = 1 << 20;
    const pod = await runPod({
      linux: {
        resources: { memory_limit_in_bytes: 64 * MiB, cpu_quota: 50_000, cpu_period: 100_000, cpu_shares: 512 },
        overhead: { memory_limit_in_bytes: 16 * MiB, cpu_quota: 5_000, cpu_period: 50_000, cpu_shares: 128 },
      },
    });
    const podCg = `${skiffd.cgroupParent}/skiff-pod-${pod.id}`;
    const info = JSON.parse((await c.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true })).info.info);
    assert.equal(info.cgroupParent, podCg);
    assert.equal(info.cgroupOwned, true);
    const ctr = await startCtr(pod, 'in-pod-cg', { linux: { resources: { memory_limit_in_bytes: 32 * MiB } } });
    const ctrPid = JSON.parse((await c.runtime('ContainerStatus', { container_id: ctr, verbose: true })).info.info).pid;
    const memoryCg = (pid: number) => /^\d+:memory:(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1] ?? /^0::(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1];
    assert.equal(memoryCg(info.pid), `${podCg}/${pod.id}`, 'the infra process is in the pod cgroup');
    assert.equal(memoryCg(ctrPid), `${podCg}/${ctr}`);
    const v1 = fs.existsSync(`/sys/fs/cgroup/memory${podCg}`);
    const read = (v1file: string, v2file: string) => fs.readFileSync(v1 ? `/sys/fs/cgroup/${v1file.split('/')[0]}${podCg}/${v1file.split('/')[1]}` : `/sys/fs/cgroup${podCg}/${v2file}`, 'utf8').trim();
    if (v1) {
      assert.equal(Number(read('memory/memory.limit_in_bytes', '')), 80 * MiB, '64 MiB of containers + 16 MiB overhead');
      assert.equal(Number(read('cpu/cpu.cfs_quota_us', '')), 60_000, '50 ms + 5 ms per 50 ms, in a 100 ms period');
      assert.equal(Number(read('cpu/cpu.cfs_period_us', '')), 100_000);
      assert.equal(Number(read('cpu/cpu.shares', '')), 640);
    } else {
      assert.equal(Number(read('', 'memory.max')), 80 * MiB);
      assert.equal(read('', 'cpu.max'), '60000 100000');
    }
    await c.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    await c.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    for (const h of ['memory', 'cpu', 'pids', 'unified', '']) assert.ok(!fs.existsSync(`/sys/fs/cgroup/${h}${podCg}`), `${h} pod cgroup removed`);
  });

  it("leaves the limits of kubelet's pod cgroup to kubelet and runs the infra process inside it", async () => {
    const c = skiffd.client;
    const parent = `${skiffd.cgroupParent}/kubepods/podabc`;
    const pod = await runPod({ linux: { cgroup_parent: parent, resources: { memory_limit_in_bytes: 64 << 20 } } });
    const info = JSON.parse((await c.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true })).info.info);
    assert.equal(info.cgroupParent, parent);
    assert.equal(info.cgroupOwned, false);
    assert.ok(fs.readFileSync(`/proc/${info.pid}/cgroup`, 'utf8').includes(`${parent}/${pod.id}\n`));
    if (fs.existsSync(`/sys/fs/cgroup/memory${parent}`)) assert.notEqual(Number(fs.readFileSync(`/sys/fs/cgroup/memory${parent}/memory.limit_in_bytes`, 'utf8')), 64 << 20);
    await c.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    assert.ok(!fs.existsSync(`/sys/fs/cgroup/memory${parent}/${pod.id}`), "the infra's cgroup is removed with the pod's shim");
  });

  it('reports pod stats: the sums of its containers, its processes, and its network interface', async () => {
    const c = skiffd.client;
    const pod = await runPod({ labels: { stats: 'yes' } });
    const busy = await startCtr(pod, 'busy', { command: ['sh', '-c', 'while :; do :; done'] });
    const mem = await startCtr(pod, 'mem', { command: ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=16 2>/dev/null; sleep 1000'] });
    // Traffic out of eth0: the bridge's gateway answers.
    await exec(mem, ['ping', '-c', '3', '-i', '0.2', '-W', '1', `${net.gateway}`]);
    // A first sample, so that the next has a CPU rate; then sample until the spinning shell
    // got CPU between two samples and the 16 MiB are written, however busy the machine.
    await c.runtime('PodSandboxStats', { pod_sandbox_id: pod.id });
    const st = await until('a CPU rate for the spinning shell and the 16 MiB of shm in the pod stats', async () => {
      const s = (await c.runtime('PodSandboxStats', { pod_sandbox_id: pod.id })).stats!;
      return (s.linux?.cpu?.usage_nano_cores?.value ?? 0) > 0 && (s.linux?.memory?.working_set_bytes?.value ?? 0) >= 16 << 20 && s;
    });
    assert.equal(st.attributes?.id, pod.id);
    const linux = st.linux!;
    const byId = new Map(linux.containers.map((x) => [x.attributes!.id, x]));
    assert.deepEqual([...byId.keys()].sort(), [busy, mem].sort());
    const sumOf = (f: (x: (typeof linux.containers)[number]) => number) => linux.containers.reduce((n, x) => n + f(x), 0);
    assert.equal(linux.cpu!.usage_core_nano_seconds!.value, sumOf((x) => x.cpu!.usage_core_nano_seconds!.value));
    assert.ok(linux.cpu!.usage_nano_cores!.value > 0, `a spinning shell uses CPU: ${linux.cpu!.usage_nano_cores!.value}`);
    assert.equal(linux.memory!.working_set_bytes!.value, sumOf((x) => x.memory!.working_set_bytes!.value));
    assert.ok(linux.memory!.working_set_bytes!.value >= 16 << 20, `16 MiB of shm counts: ${linux.memory!.working_set_bytes!.value}`);
    assert.ok(linux.process!.process_count!.value >= 2, `processes: ${linux.process!.process_count!.value}`);
    const eth0 = linux.network!.default_interface!;
    assert.equal(eth0.name, 'eth0');
    assert.ok(eth0.tx_bytes!.value >= 3 * 84 && eth0.rx_bytes!.value >= 3 * 84, `ping traffic counted: ${JSON.stringify(eth0)}`);
    // The container's CPU figure is the cgroup's own: read from the cgroup before and after
    // a stats call, the counter brackets it.
    const podCg = `${skiffd.cgroupParent}/skiff-pod-${pod.id}`;
    const v1Usage = `/sys/fs/cgroup/cpuacct${podCg}/${busy}/cpuacct.usage`;
    const cgroupUsageNs = () =>
      fs.existsSync(v1Usage)
        ? Number(fs.readFileSync(v1Usage, 'utf8'))
        : 1000 * Number(/^usage_usec (\d+)$/m.exec(fs.readFileSync(`/sys/fs/cgroup${podCg}/${busy}/cpu.stat`, 'utf8'))![1]);
    const before = cgroupUsageNs();
    const reported = (await c.runtime('ContainerStats', { container_id: busy })).stats!.cpu!.usage_core_nano_seconds!.value;
    const after = cgroupUsageNs();
    assert.ok(before <= reported && reported <= after, `cgroup ${before}..${after} vs stats ${reported}`);
    const list = await c.runtime('ListPodSandboxStats', { filter: { label_selector: { stats: 'yes' } } });
    assert.deepEqual(list.stats.map((x) => x.attributes?.id), [pod.id]);
    assert.equal((await c.runtime('ListPodSandboxStats', { filter: { id: pod.id.slice(0, 12) } })).stats.length, 1);
    assert.equal(await code(c.runtime('PodSandboxStats', { pod_sandbox_id: 'nope' })), NOT_FOUND);
    await c.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    const stopped = (await c.runtime('PodSandboxStats', { pod_sandbox_id: pod.id })).stats!;
    assert.equal(stopped.linux!.network, null);
    assert.equal(stopped.linux!.process!.process_count!.value, 0);
    await c.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('streams container and pod events in order to every subscriber, with statuses', async () => {
    const c = skiffd.client;
    type Ev = { container_id: string; container_event_type: number; pod_sandbox_status: { id: string; state: number } | null; containers_statuses: { id: string; state: number; exit_code: number }[] };
    const subscribe = () => {
      const got: Ev[] = [];
      const stream = c.events();
      stream.on('data', (e: Ev) => got.push(e));
      stream.on('error', () => {}); // cancelled at the end
      return { got, stream };
    };
    const a = subscribe();
    const b = subscribe();
    await new Promise((r) => setTimeout(r, 200)); // both subscribed
    const pod = await runPod();
    const id = await startCtr(pod, 'ev', { command: ['sh', '-c', 'sleep 0.3; exit 3'] });
    await waitState(id, ContainerState.CONTAINER_EXITED);
    await c.runtime('RemoveContainer', { container_id: id });
    await c.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    await c.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    const deleted = (evs: Ev[]) => evs.some((e) => e.container_id === pod.id && e.container_event_type === 3);
    await until("both subscribers to get the pod's deleted event", async () => deleted(a.got) && deleted(b.got));
    a.stream.cancel();
    b.stream.cancel();
    const mine = (evs: Ev[]) => evs.filter((e) => e.container_id === id || e.container_id === pod.id);
    const seq = mine(a.got).map((e) => `${e.container_id === id ? 'ctr' : 'pod'}:${e.container_event_type}`);
    // 0 created, 1 started, 2 stopped, 3 deleted
    assert.deepEqual(seq, ['pod:0', 'pod:1', 'ctr:0', 'ctr:1', 'ctr:2', 'ctr:3', 'pod:2', 'pod:3']);
    assert.deepEqual(mine(b.got), mine(a.got), 'both subscribers saw the same events');
    const stoppedEv = mine(a.got)[4];
    assert.equal(stoppedEv.pod_sandbox_status?.id, pod.id);
    assert.equal(stoppedEv.pod_sandbox_status?.state, PodSandboxState.SANDBOX_READY);
    const st = stoppedEv.containers_statuses.find((x) => x.id === id)!;
    assert.equal(st.state, ContainerState.CONTAINER_EXITED);
    assert.equal(st.exit_code, 3);
    assert.deepEqual(mine(a.got)[5].containers_statuses, [], 'a deleted container is not listed');
    assert.equal(mine(a.got)[6].pod_sandbox_status?.state, PodSandboxState.SANDBOX_NOTREADY);
  });

  it('logs JSON lines, every CRI call at debug level with its method and duration', async () => {
    await skiffd.client.runtime('Version', {});
    assert.equal(await code(skiffd.client.runtime('ContainerStatus', { container_id: 'no-such-container' })), NOT_FOUND);
    const lines = skiffd.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const call = lines.find((l) => l.msg === 'cri call' && l.method === 'Version');
    assert.ok(call, 'the Version call is logged');
    assert.equal(call.level, 'debug');
    assert.equal(typeof call.ms, 'number');
    const failed = lines.find((l) => l.msg === 'cri call failed' && l.method === 'ContainerStatus' && String(l.error).includes('no-such-container'));
    assert.deepEqual({ code: failed?.code, level: failed?.level }, { code: 'NOT_FOUND', level: 'debug' });
  });

  it('serves Prometheus metrics of calls, pods, containers, pulls, CNI and shims', async () => {
    const c = skiffd.client;
    const pod = await runPod();
    const failing = await startCtr(pod, 'fails', { command: ['sh', '-c', 'exit 1'] });
    await waitState(failing, ContainerState.CONTAINER_EXITED);
    assert.equal(await code(c.runtime('ContainerStatus', { container_id: 'nope' })), NOT_FOUND);
    const address = (JSON.parse((await c.runtime('Status', { verbose: true })).info.config) as { metricsAddress: string }).metricsAddress;
    assert.match(address, /^127\.0\.0\.1:\d+$/);
    const fetchText = async (p: string, accept?: string) => {
      const res = await fetch(`http://${address}${p}`, { headers: accept ? { accept } : {} });
      return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
    };
    const scrape = await fetchText('/metrics');
    assert.equal(scrape.status, 200);
    assert.match(scrape.type, /^text\/plain; version=0\.0\.4/);
    const families = parsePrometheus(scrape.body);
    const sample = (series: string, labels: Record<string, string> = {}) => {
      const family = series.replace(/_count$/, '');
      const f = families.get(family) ?? families.get(series);
      assert.ok(f, `${family} is exported`);
      const m = f.samples.find((x) => x.name === series && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
      assert.ok(m, `${series}${JSON.stringify(labels)} has a sample`);
      return m.value;
    };
    const value = (name: string, labels: Record<string, string> = {}) => sample(name, labels);
    const count = (name: string, labels: Record<string, string> = {}) => sample(`${name}_count`, labels);

    assert.ok(value('skiff_cri_requests_total', { method: 'RunPodSandbox', code: 'OK' }) >= 1);
    assert.ok(value('skiff_cri_requests_total', { method: 'ContainerStatus', code: 'NOT_FOUND' }) >= 1);
    assert.equal(families.get('skiff_cri_request_duration_seconds')?.type, 'histogram');
    assert.ok(count('skiff_cri_request_duration_seconds', { method: 'RunPodSandbox' }) >= 1);
    for (const op of ['run_pod', 'create_container', 'start_container']) assert.ok(count('skiff_lifecycle_duration_seconds', { operation: op }) >= 1, op);
    const pods = (await c.runtime('ListPodSandbox', {})).items;
    const ready = pods.filter((p) => p.state === PodSandboxState.SANDBOX_READY).length;
    assert.equal(value('skiff_pods', { state: 'ready' }), ready);
    assert.equal(value('skiff_pods', { state: 'notready' }), pods.length - ready);
    const ctrs = (await c.runtime('ListContainers', {})).containers;
    assert.equal(value('skiff_containers', { state: 'running' }), ctrs.filter((x) => x.state === ContainerState.CONTAINER_RUNNING).length);
    assert.ok(value('skiff_container_exits_total', { reason: 'Error' }) >= 1);
    assert.ok(value('skiff_container_starts_total') >= 1);
    assert.equal(value('skiff_shims'), ready);
    assert.ok(value('skiff_shim_resident_memory_bytes') > 0);
    assert.ok(value('skiff_image_pulls_total', { result: 'success' }) >= 2);
    assert.ok(value('skiff_image_store_content_bytes') > 0);
    assert.ok(count('skiff_cni_operation_duration_seconds', { command: 'ADD', plugin: 'bridge' }) >= 1);
    assert.ok(value('process_resident_memory_bytes') > 10e6);
    assert.ok(families.has('nodejs_eventloop_lag_seconds'));
    // Bounded labels: no id of a pod or container in any label value.
    for (const f of families.values()) for (const m of f.samples) for (const v of Object.values(m.labels)) assert.ok(!/^[0-9a-f]{32,}$/.test(v), `${f.name} has an id label ${v}`);

    // The Grafana dashboard asks only for series skiffd exports, with labels they carry.
    const dashboard = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../deploy/grafana/skiff-node.json'), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    assert.ok(exprs.length >= 10);
    for (const expr of exprs)
      for (const m of expr.matchAll(/\b((?:skiff|process|nodejs)_[a-z0-9_]+)(?:\{([^}]*)\})?/g)) {
        const series = m[1];
        const family = families.get(series) ?? families.get(series.replace(/_(bucket|sum|count)$/, ''));
        assert.ok(family, `dashboard expression uses ${series}, which skiffd does not export: ${expr}`);
        for (const l of (m[2] ?? '').matchAll(/([a-z_]+)\s*(?:=~|!=|=)/g))
          if (l[1] !== 'instance' && l[1] !== 'le') assert.ok(family.samples.some((x) => l[1] in x.labels), `${series} has no label ${l[1]}`);
      }

    const om = await fetchText('/metrics', 'application/openmetrics-text; version=1.0.0');
    assert.match(om.type, /^application\/openmetrics-text/);
    assert.ok(om.body.trimEnd().endsWith('# EOF'));
    assert.equal((await fetchText('/other')).status, 404);
    await c.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    await c.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it("runs CNI CHECK on every pod's network after a restart and reports what it found", async () => {
    const pod = await runPod();
    const verbose = async () => JSON.parse((await skiffd.client.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true })).info.info);
    const checked = () => until('a CNI CHECK result', async () => (await verbose()).networkCheck as { ok: boolean; error?: string } | undefined);
    assert.equal((await verbose()).networkCheck, undefined, 'no check before a restart');
    await skiffd.kill();
    await skiffd.restart();
    assert.deepEqual(await checked(), { ok: true, at: (await verbose()).networkCheck.at });
    // The pod's interface goes away while skiffd is down: CHECK says so.
    execFileSync('nsenter', [`--net=${(await verbose()).netns}`, 'ip', 'link', 'del', 'eth0']);
    await skiffd.kill();
    await skiffd.restart();
    const bad = await checked();
    assert.equal(bad.ok, false);
    assert.match(bad.error ?? '', /eth0|interface|link/i);
    assert.equal((await skiffd.client.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id })).status?.state, PodSandboxState.SANDBOX_READY, 'the state is left to kubelet');
    await skiffd.client.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    await skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('keeps 20 pods running across a SIGKILL of skiffd, reporting them as before and exits that happened meanwhile', async () => {
    const c = skiffd.client;
    const pods = await Promise.all(Array.from({ length: 20 }, () => runPod()));
    const running = await Promise.all(pods.map((p) => startCtr(p, 'keep')));
    const ending = await startCtr(pods[0], 'end', { command: ['sh', '-c', 'sleep 1; exit 7'] });
    const pids = await Promise.all(running.map(async (id) => JSON.parse((await c.runtime('ContainerStatus', { container_id: id, verbose: true })).info.info).pid as number));
    const podsBefore = (await c.runtime('ListPodSandbox', {})).items;
    const ctrsBefore = (await c.runtime('ListContainers', {})).containers.filter((x) => x.id !== ending);
    const endingPid = JSON.parse((await c.runtime('ContainerStatus', { container_id: ending, verbose: true })).info.info).pid as number;
    await skiffd.kill();
    // The exit happens while skiffd is down, however long the busy machine takes to get there.
    await until(`container ${ending} (pid ${endingPid}) to exit`, async () => !fs.existsSync(`/proc/${endingPid}`));
    await skiffd.restart();
    const c2 = skiffd.client;
    assert.deepEqual((await c2.runtime('ListPodSandbox', {})).items, podsBefore, 'every pod reported exactly as before');
    assert.deepEqual((await c2.runtime('ListContainers', {})).containers.filter((x) => x.id !== ending), ctrsBefore, 'every container as before');
    for (const pid of pids) assert.ok(fs.existsSync(`/proc/${pid}`), `container process ${pid} survived`);
    const ended = await c2.runtime('ContainerStatus', { container_id: ending });
    assert.equal(ended.status?.state, ContainerState.CONTAINER_EXITED);
    assert.equal(ended.status?.exit_code, 7);
    assert.equal((await exec(running[3], ['echo', 'still'])).out, 'still\n');
    await c2.runtime('StopContainer', { container_id: running[0], timeout: 0 });
    assert.equal((await c2.runtime('ContainerStatus', { container_id: running[0] })).status?.exit_code, 137);
    for (const p of pods) await c2.runtime('RemovePodSandbox', { pod_sandbox_id: p.id });
  });

  it('after a host reboot (empty state dir, no shims) reports pods NotReady and containers exited, and removes them cleanly', async () => {
    // A skiffd of its own: the reboot wipes its whole state dir.
    const own = await TestSkiffd.start({ args: ['--network.write_default_config', 'false'] });
    const ownNet = new TestNetwork(path.join(own.dir, 'net.d'), path.join(own.dir, 'ipam'));
    try {
      own.mirror('docker.io', node.reg.host);
      const c = own.client;
      await c.image('PullImage', { image: { image: 'busybox' } });
      const cfg = podConfig();
      const podId = (await c.runtime('RunPodSandbox', { config: cfg })).pod_sandbox_id;
      const ctr = (await c.runtime('CreateContainer', { pod_sandbox_id: podId, config: ctrConfig('boot'), sandbox_config: cfg })).container_id;
      await c.runtime('StartContainer', { container_id: ctr });
      await own.kill();
      // What a reboot does: every process and mount gone, the state dir (/run) empty.
      const shimPid = Number(fs.readFileSync(path.join(own.state, 'pods', podId, 'shim', 'shim.pid'), 'utf8'));
      const doomed = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(ctr);
        } catch {
          return false;
        }
      });
      for (const p of [String(shimPid), ...doomed]) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await new Promise((r) => setTimeout(r, 300));
      const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m && m.startsWith(own.state + '/'));
      for (const m of mounts.sort().reverse()) execFileSync('umount', ['-l', m]);
      fs.rmSync(own.state, { recursive: true, force: true });
      await own.restart();
      const c2 = own.client;
      assert.equal((await c2.runtime('PodSandboxStatus', { pod_sandbox_id: podId })).status?.state, PodSandboxState.SANDBOX_NOTREADY);
      const st = (await c2.runtime('ContainerStatus', { container_id: ctr })).status!;
      assert.equal(st.state, ContainerState.CONTAINER_EXITED);
      assert.equal(st.reason, 'Unknown');
      await c2.runtime('StopPodSandbox', { pod_sandbox_id: podId });
      await c2.runtime('RemovePodSandbox', { pod_sandbox_id: podId });
      assert.equal(await code(c2.runtime('ContainerStatus', { container_id: ctr })), NOT_FOUND);
      assert.equal(fs.existsSync(path.join(own.root, 'snapshots', 'containers', ctr)), false, 'the writable layer is gone');
    } finally {
      await own.cleanup();
      ownNet.remove();
    }
  });

  it('serves the RuntimeService under runtime.v1alpha2 too', async () => {
    const { CriClient } = await import('../../src/cri/client');
    const old = new CriClient(skiffd.socket, 'runtime.v1alpha2');
    try {
      const pods = await old.runtime('ListPodSandbox', {});
      assert.ok(pods.items.length > 0);
    } finally {
      old.close();
    }
  });

  it('leaves no mount, netns or shim behind once pods are removed', async () => {
    const c = skiffd.client;
    for (const p of (await c.runtime('ListPodSandbox', {})).items) await c.runtime('RemovePodSandbox', { pod_sandbox_id: p.id });
    assert.deepEqual((await c.runtime('ListContainers', {})).containers, []);
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(skiffd.dir));
    assert.deepEqual(mounts, []);
    assert.deepEqual(fs.readdirSync(path.join(skiffd.state, 'pods')), []);
    const shims = execFileSync('ps', ['-eo', 'args']).toString().split('\n').filter((l) => l.includes('skiff-shim') && l.includes(skiffd.state));
    assert.deepEqual(shims, []);
  });
});
