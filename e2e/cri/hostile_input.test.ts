// Hostile input against a real skiffd, over gRPC: port mappings out of range, of unknown
// protocols or mapped twice; empty ids on every call that takes one; memory limits no
// container can start under; a pull from a port that refuses connections. Each is refused
// with the right status code and a message naming the field, and leaves the host as it was.
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { CriCallError } from '../../src/cri/client';
import { ContainerState, PodSandboxState, Protocol } from '../../src/cri/gen/cri';
import type { PortMapping } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { CriPod, CriPods } from '../fixtures/cri_pods';
import { TestNetwork } from '../fixtures/network';
import { startBusyboxRegistry } from '../fixtures/node';
import { TestRegistry, freePort } from '../fixtures/registry';
import { cgroupMounts } from '../fixtures/cleanup';
import { TestSkiffd } from '../fixtures/skiffd';

const OK = 0;
const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const RESOURCE_EXHAUSTED = 8;
const FAILED_PRECONDITION = 9;
const UNAVAILABLE = 14;

/** The status a call ended with: code 0 and no details when it succeeded. */
async function outcome(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
    return { code: OK, details: '' };
  } catch (e) {
    return { code: (e as CriCallError).code, details: (e as CriCallError).details };
  }
}

const ls = (dir: string): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);
const lsTree = (dir: string): string[] => (fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).sort() : []);
const lines = (cmd: string, args: string[]): string[] => {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

describe('hostile input (skiffd over gRPC)', function () {
  this.timeout(180_000);
  let reg: TestRegistry;
  let skiffd: TestSkiffd;
  let net: TestNetwork;
  let cri: CriPods;
  /** A ready pod with a running container: what refused calls must leave alone. */
  let pod: CriPod;
  let ctr: string;

  const client = () => skiffd.client;

  /** What skiffd and the CNI plugins hold on the host, as far as this suite can tell apart
   * from other runs: pods and containers listed, pod dirs, netns mounts, bundles, mounts
   * under skiffd's dir, CNI results cached, IPs reserved, veths on the bridge, portmap's
   * NAT rules of the suite's network. */
  const hostState = async () => ({
    pods: (await client().runtime('ListPodSandbox', {})).items.map((p) => `${p.id} ${PodSandboxState[p.state]}`).sort(),
    containers: (await client().runtime('ListContainers', {})).containers.map((c) => `${c.id} ${ContainerState[c.state]}`).sort(),
    podDirs: ls(path.join(skiffd.state, 'pods')),
    netns: ls(path.join(skiffd.state, 'netns')),
    bundles: ls(path.join(skiffd.state, 'containers')),
    mounts: fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(`${skiffd.dir}/`)).sort(),
    cniCache: lsTree(path.join(skiffd.root, 'cni')),
    ipam: lsTree(path.join(skiffd.dir, 'ipam')).filter((f) => !/last_reserved_ip|lock$/.test(f)),
    veths: lines('ip', ['-o', 'link', 'show', 'master', net.bridge]).map((l) => l.split(':')[1]?.trim()).sort(),
    natRules: lines('iptables-save', ['-t', 'nat']).filter((l) => l.includes(`test-${net.bridge}`)),
  });

  /** The call is refused with `code`, its message matching `details`, and nothing on the
   * host changed. */
  const refused = async (call: () => Promise<unknown>, code: number, details: RegExp, what: string) => {
    const before = await hostState();
    const r = await outcome(call());
    assert.equal(r.code, code, `${what}: status ${r.code} (${r.details})`);
    assert.match(r.details, details, `${what}: ${r.details}`);
    assert.deepEqual(await hostState(), before, `${what}: nothing made, changed or left behind`);
  };

  before(async () => {
    reg = await startBusyboxRegistry();
    // Retries generous enough that a pull retrying a refused connection would outlast the
    // test's deadline: the pull test tells a fast failure from a retried one by its status.
    skiffd = await TestSkiffd.start({ args: ['--network.write_default_config', 'false', '--image.attempts', '50', '--image.retry_window_s', '600'] });
    net = new TestNetwork(path.join(skiffd.dir, 'net.d'), path.join(skiffd.dir, 'ipam'), { portmap: true });
    skiffd.mirror('docker.io', reg.host);
    await client().image('PullImage', { image: { image: 'busybox' } });
    cri = new CriPods(skiffd, { prefix: 'hostile', namespace: 'e2e', uidPrefix: 'uid-hostile-' });
    pod = await cri.runPod();
    ctr = await cri.startCtr(pod, 'bystander', { linux: { resources: { memory_limit_in_bytes: 64 << 20 } } });
  });
  after(async () => {
    await skiffd?.cleanup();
    net?.remove();
    await reg?.stop();
  });

  describe('port mappings', () => {
    const pm = (over: Partial<PortMapping>): Reply<PortMapping> => ({ protocol: Protocol.TCP, container_port: 80, host_port: 0, host_ip: '', ...over });

    it('refuses ports outside 1-65535, unknown protocols and a host port mapped twice before CNI runs, naming the entry', async () => {
      const config = cri.podConfig();
      const cases: [Reply<PortMapping>[], RegExp][] = [
        [[pm({}), pm({ container_port: 0 })], /^config\.port_mappings\[1\]\.container_port: 0 is not in 1-65535$/],
        [[pm({ container_port: 65536 })], /^config\.port_mappings\[0\]\.container_port: 65536/],
        [[pm({}), pm({ container_port: 81 }), pm({ host_port: 70000 })], /^config\.port_mappings\[2\]\.host_port: 70000 is not 0 \(no host port\) or in 1-65535$/],
        [[pm({ host_port: -1 })], /^config\.port_mappings\[0\]\.host_port: -1/],
        [[pm({ host_port: 18080, protocol: 7 as Protocol })], /^config\.port_mappings\[0\]\.protocol: 7 is not TCP \(0\), UDP \(1\) or SCTP \(2\)$/],
        [[pm({ host_port: 18080, host_ip: 'not-an-ip' })], /^config\.port_mappings\[0\]\.host_ip: "not-an-ip" is not an IP address$/],
        [[pm({ host_port: 18080 }), pm({ container_port: 81, host_port: 18080 })], /^config\.port_mappings\[1\]\.host_port: 18080\/TCP on host_ip "" is already mapped by config\.port_mappings\[0\]$/],
      ];
      for (const [mappings, details] of cases)
        await refused(() => client().runtime('RunPodSandbox', { config: { ...config, port_mappings: mappings } }), INVALID_ARGUMENT, details, JSON.stringify(mappings));
      // The name was never reserved: the same pod with mappings kubelet sends runs (host
      // port 0 for a port that only names a container port; one port on two protocols).
      const { pod_sandbox_id } = await client().runtime('RunPodSandbox', {
        config: { ...config, port_mappings: [pm({}), pm({ protocol: Protocol.UDP, container_port: 53 }), pm({ protocol: Protocol.TCP, container_port: 53 })] },
      });
      assert.equal((await client().runtime('PodSandboxStatus', { pod_sandbox_id })).status?.state, PodSandboxState.SANDBOX_READY);
      await client().runtime('RemovePodSandbox', { pod_sandbox_id });
    });
  });

  describe('empty ids', () => {
    it('are INVALID_ARGUMENT on every call that takes an id, naming the field, and touch nothing', async () => {
      const calls: [string, () => Promise<unknown>, 'pod_sandbox_id' | 'container_id'][] = [
        ['StopPodSandbox', () => client().runtime('StopPodSandbox', { pod_sandbox_id: '' }), 'pod_sandbox_id'],
        ['RemovePodSandbox', () => client().runtime('RemovePodSandbox', { pod_sandbox_id: '' }), 'pod_sandbox_id'],
        ['PodSandboxStatus', () => client().runtime('PodSandboxStatus', { pod_sandbox_id: '', verbose: true }), 'pod_sandbox_id'],
        ['UpdatePodSandboxResources', () => client().runtime('UpdatePodSandboxResources', { pod_sandbox_id: '', resources: { cpu_shares: 512 } }), 'pod_sandbox_id'],
        ['PodSandboxStats', () => client().runtime('PodSandboxStats', { pod_sandbox_id: '' }), 'pod_sandbox_id'],
        ['CreateContainer', () => client().runtime('CreateContainer', { pod_sandbox_id: '', config: cri.ctrConfig('orphan'), sandbox_config: pod.config }), 'pod_sandbox_id'],
        ['PortForward', () => client().runtime('PortForward', { pod_sandbox_id: '', port: [80] }), 'pod_sandbox_id'],
        ['StartContainer', () => client().runtime('StartContainer', { container_id: '' }), 'container_id'],
        ['StopContainer', () => client().runtime('StopContainer', { container_id: '', timeout: 0 }), 'container_id'],
        ['RemoveContainer', () => client().runtime('RemoveContainer', { container_id: '' }), 'container_id'],
        ['ContainerStatus', () => client().runtime('ContainerStatus', { container_id: '', verbose: true }), 'container_id'],
        ['UpdateContainerResources', () => client().runtime('UpdateContainerResources', { container_id: '', linux: { cpu_shares: 512 } }), 'container_id'],
        ['ReopenContainerLog', () => client().runtime('ReopenContainerLog', { container_id: '' }), 'container_id'],
        ['ExecSync', () => client().runtime('ExecSync', { container_id: '', cmd: ['true'], timeout: 5 }), 'container_id'],
        ['Exec', () => client().runtime('Exec', { container_id: '', cmd: ['true'], stdout: true }), 'container_id'],
        ['Attach', () => client().runtime('Attach', { container_id: '', stdout: true }), 'container_id'],
        ['ContainerStats', () => client().runtime('ContainerStats', { container_id: '' }), 'container_id'],
      ];
      for (const [method, call, field] of calls) await refused(call, INVALID_ARGUMENT, new RegExp(`^${field} is required$`), method);
      // The pod and its container were not stopped, removed or changed by any of them.
      assert.equal((await client().runtime('PodSandboxStatus', { pod_sandbox_id: pod.id })).status?.state, PodSandboxState.SANDBOX_READY);
      assert.equal((await client().runtime('ContainerStatus', { container_id: ctr })).status?.state, ContainerState.CONTAINER_RUNNING);
      assert.equal((await cri.exec(ctr, ['echo', 'alive'])).out, 'alive\n');
    });

    it('leave unknown ids as they were: Stop and Remove succeed, the others answer NOT_FOUND', async () => {
      const unknown = 'no-such-id';
      const before = await hostState();
      for (const [method, call, want] of [
        ['StopPodSandbox', () => client().runtime('StopPodSandbox', { pod_sandbox_id: unknown }), OK],
        ['RemovePodSandbox', () => client().runtime('RemovePodSandbox', { pod_sandbox_id: unknown }), OK],
        ['StopContainer', () => client().runtime('StopContainer', { container_id: unknown, timeout: 0 }), OK],
        ['RemoveContainer', () => client().runtime('RemoveContainer', { container_id: unknown }), OK],
        ['PodSandboxStatus', () => client().runtime('PodSandboxStatus', { pod_sandbox_id: unknown }), NOT_FOUND],
        ['ContainerStatus', () => client().runtime('ContainerStatus', { container_id: unknown }), NOT_FOUND],
        ['StartContainer', () => client().runtime('StartContainer', { container_id: unknown }), NOT_FOUND],
      ] as const)
        assert.equal((await outcome(call())).code, want, method);
      assert.deepEqual(await hostState(), before);
    });
  });

  describe('memory limits no container can start under', () => {
    const MiB = 1024 * 1024;

    it('are refused at CreateContainer naming the field and the minimum; the minimum itself starts', async () => {
      await refused(
        () => cri.createCtr(pod, 'tiny', { linux: { resources: { memory_limit_in_bytes: 4096 } } }),
        INVALID_ARGUMENT,
        /^config\.linux\.resources\.memory_limit_in_bytes: 4096 bytes is below the minimum of 1048576 bytes \(1 MiB\) a container needs to start$/,
        'CreateContainer with 4096 bytes',
      );
      // The name is free, and a container at the minimum runs.
      const id = await cri.startCtr(pod, 'tiny', { linux: { resources: { memory_limit_in_bytes: MiB } } });
      assert.equal((await cri.exec(id, ['echo', 'fits'])).out, 'fits\n');
      assert.equal((await client().runtime('ContainerStatus', { container_id: id })).status?.state, ContainerState.CONTAINER_RUNNING);
      await client().runtime('RemoveContainer', { container_id: id });
    });

    it('are refused at UpdateContainerResources, leaving the container and its limits as they were', async () => {
      await refused(
        () => client().runtime('UpdateContainerResources', { container_id: ctr, linux: { memory_limit_in_bytes: 4096 } }),
        INVALID_ARGUMENT,
        /^linux\.memory_limit_in_bytes: 4096 bytes is below the minimum of 1048576 bytes/,
        'UpdateContainerResources to 4096 bytes',
      );
      const st = (await client().runtime('ContainerStatus', { container_id: ctr })).status!;
      assert.equal(st.state, ContainerState.CONTAINER_RUNNING);
      assert.equal(st.resources?.linux?.memory_limit_in_bytes, 64 * MiB);
    });

    it("fail CreateContainer naming the OOM kill when the pod's limit is too low, leaving nothing behind", async () => {
      // A pod cgroup skiff makes (no cgroup_parent) gets the pod's limit: 64 KiB, less
      // than any process needs to be set up in.
      const small = await cri.runPod({ linux: { resources: { memory_limit_in_bytes: 64 * 1024 } } });
      const podCgroup = JSON.parse((await client().runtime('PodSandboxStatus', { pod_sandbox_id: small.id, verbose: true })).info.info).cgroupParent as string;
      const children = () => cgroupMounts().flatMap((m) => ls(path.join(m, podCgroup)).filter((n) => fs.statSync(path.join(m, podCgroup, n)).isDirectory()));
      const childrenBefore = children();
      await refused(
        () => cri.createCtr(small, 'starved'),
        RESOURCE_EXHAUSTED,
        // The kernel's OOM killer picks its victim in the pod's cgroup: the container's
        // process, or (on a busy machine) the pod's infra process, whose namespaces the
        // container was joining.
        /^create container "[0-9a-f]{64}": the kernel's OOM killer ended (the container process before its command ran: it has no memory limit of its own; that of a cgroup above it \(its pod's\) is too low for it to start|the pod's infra process, whose namespaces the container joins: the pod's memory limit is too low)$/,
        'CreateContainer in a 64 KiB pod',
      );
      assert.deepEqual(children(), childrenBefore, "no container cgroup left in the pod's");
      await client().runtime('RemovePodSandbox', { pod_sandbox_id: small.id });
    });

    it("fail CreateContainer with FAILED_PRECONDITION naming the signal when the pod's infra process was killed, leaving nothing behind", async () => {
      const doomed = await cri.runPod();
      const infra = JSON.parse((await client().runtime('PodSandboxStatus', { pod_sandbox_id: doomed.id, verbose: true })).info.info).pid as number;
      const containersBefore = (await client().runtime('ListContainers', { filter: { pod_sandbox_id: doomed.id } })).containers.length;
      process.kill(infra, 'SIGKILL');
      await refused(
        () => cri.createCtr(doomed, 'orphan'),
        FAILED_PRECONDITION,
        /^create container "[0-9a-f]{64}": the pod's infra process, whose namespaces the container joins, has been killed by signal 9$/,
        'CreateContainer in a pod whose infra process was killed',
      );
      assert.equal((await client().runtime('ListContainers', { filter: { pod_sandbox_id: doomed.id } })).containers.length, containersBefore);
      await client().runtime('StopPodSandbox', { pod_sandbox_id: doomed.id });
      await client().runtime('RemovePodSandbox', { pod_sandbox_id: doomed.id });
    });

    it('fail StartContainer naming the OOM kill and the limit when the kernel kills the process as it starts', async function () {
      const id = await cri.createCtr(pod, 'squeezed', { linux: { resources: { memory_limit_in_bytes: 64 * MiB } } });
      const bundle = JSON.parse((await client().runtime('ContainerStatus', { container_id: id, verbose: true })).info.info).bundle as string;
      const cgroupsPath = (JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { linux: { cgroupsPath: string } }).linux.cgroupsPath;
      const v1 = cgroupMounts().map((m) => path.join(m, cgroupsPath)).find((d) => fs.existsSync(path.join(d, 'memory.limit_in_bytes')));
      // cgroup v1 refuses a limit below what the cgroup holds and can reclaim (v2 would kill
      // the process at the write instead): stepping down to the lowest limit it takes leaves
      // the created process no room to exec in, as a limit too tight for its start would.
      if (!v1) this.skip();
      const limitFile = path.join(v1!, 'memory.limit_in_bytes');
      let limit = Number(fs.readFileSync(path.join(v1!, 'memory.usage_in_bytes'), 'utf8'));
      for (let refusals = 0; refusals < 10; ) {
        try {
          fs.writeFileSync(limitFile, String(limit - 4096));
          limit -= 4096;
          refusals = 0;
        } catch {
          refusals++; // the kernel drains its per-CPU charge caches (a worker's job), then may take it
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const r = await outcome(client().runtime('StartContainer', { container_id: id }));
      assert.equal(r.code, RESOURCE_EXHAUSTED, r.details);
      assert.match(r.details, new RegExp(`^start container "${id}": the kernel's OOM killer ended the container process before its command ran: its memory limit of ${limit} bytes is too low for it to start$`));
      const st = (await client().runtime('ContainerStatus', { container_id: id })).status!;
      assert.equal(st.state, ContainerState.CONTAINER_EXITED);
      assert.equal(st.reason, 'StartError');
      assert.equal(st.message, r.details);
      await client().runtime('RemoveContainer', { container_id: id });
    });
  });

  describe('pulls', () => {
    it('fail at once with UNAVAILABLE, naming the address, from a loopback port that refuses connections', async () => {
      const port = await freePort(); // nothing listens on it
      const image = `127.0.0.1:${port}/library/busybox:latest`;
      const content = () => lsTree(path.join(skiffd.root, 'content'));
      const before = content();
      // skiffd runs with 50 attempts in a 600 s window: had it retried, the call would end
      // at this deadline (DEADLINE_EXCEEDED) instead.
      const r = await outcome(client().image('PullImage', { image: { image } }, { timeoutMs: 60_000 }));
      assert.equal(r.code, UNAVAILABLE, r.details);
      assert.match(r.details, new RegExp(`http://127\\.0\\.0\\.1:${port} failed after 1 attempt \\(not retried: the same request would fail again\\): connect ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
      assert.equal((await client().image('ImageStatus', { image: { image } })).image, null);
      assert.deepEqual(content(), before, 'nothing ingested');
    });
  });
});
