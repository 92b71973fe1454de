// The skiff CLI on pods and containers against a real skiffd: info, pods, ps, inspect
// (and the isolation report), logs (-f, --tail), exec (exit codes, stdin), stats, stop,
// rm, the output formats and exit codes. Run as `node dist/src/cli/skiff.js`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { load } from 'js-yaml';
import type { ContainerConfig, PodSandboxConfig } from '../../src/cri/gen/cri';
import { ContainerState } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import type { Isolation } from '../../src/container/isolation';
import { APPARMOR_DEFAULT_PROFILE, detectHostLsm } from '../../src/container/lsm';
import { runTempDir } from '../fixtures/cleanup';
import { CriPod, CriPods } from '../fixtures/cri_pods';
import { busyboxLayer } from '../fixtures/images';
import { until } from '../fixtures/kubelet';
import { startTestNode, TestNode } from '../fixtures/node';
import { parsePrometheus } from '../fixtures/prometheus';
import type { TestSkiffd } from '../fixtures/skiffd';

const CLI = path.resolve(__dirname, '../../src/cli/skiff.js');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

describe('skiff CLI: pods and containers', function () {
  this.timeout(120_000);
  let node: TestNode;
  let skiffd: TestSkiffd;

  const skiff = (args: string[], input?: string): Run => {
    const r = spawnSync(process.execPath, [CLI, '--socket', skiffd.socket, ...args], { input, maxBuffer: 1 << 26, timeout: 60_000 });
    return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  };
  const json = <T>(args: string[]): T => {
    const r = skiff([...args, '-o', 'json']);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };
  let cri: CriPods;
  const runPod = (over: Reply<PodSandboxConfig> = {}) => cri.runPod(over);
  const startCtr = (pod: CriPod, name: string, over: Reply<ContainerConfig> = {}) => cri.startCtr(pod, name, over);

  before(async () => {
    node = await startTestNode();
    skiffd = node.skiffd;
    cri = new CriPods(skiffd, { prefix: 'cli', namespace: 'ops', uidPrefix: 'cli-' });
  });
  after(async () => {
    await node?.stop();
  });

  it('shows info, pods and containers as tables, JSON and YAML', async () => {
    const pod = await runPod();
    const id = await startCtr(pod, 'web');
    const exited = await startCtr(pod, 'done', { command: ['true'] });
    const info = json<{ version: { runtime_name: string }; conditions: { type: string; status: boolean }[] }>(['info']);
    assert.equal(info.version.runtime_name, 'skiff');
    assert.ok(info.conditions.some((c) => c.type === 'RuntimeReady' && c.status));
    const pods = skiff(['pods']);
    assert.equal(pods.status, 0);
    assert.match(pods.stdout, /^POD ID\s+CREATED\s+STATE\s+NAME\s+NAMESPACE/);
    assert.match(pods.stdout, new RegExp(`${pod.id.slice(0, 13)}\\s+\\S+ ago\\s+Ready\\s+${pod.config.metadata!.name}\\s+ops`));
    assert.deepEqual(load(skiff(['pods', '-o', 'yaml']).stdout) as unknown, json(['pods']), 'YAML and JSON say the same');
    assert.equal(skiff(['pods', '-q', '--name', pod.config.metadata!.name!]).stdout, `${pod.id}\n`);
    await until(`container ${exited} to exit`, async () => (await skiffd.client.runtime('ContainerStatus', { container_id: exited })).status?.state === ContainerState.CONTAINER_EXITED);
    const running = skiff(['ps', '-q', '-p', pod.id]).stdout.trim().split('\n');
    assert.deepEqual(running, [id], 'ps lists running containers');
    assert.deepEqual(skiff(['ps', '-a', '-q', '-p', pod.id]).stdout.trim().split('\n').sort(), [id, exited].sort());
    assert.match(skiff(['ps']).stdout, new RegExp(`${id.slice(0, 13)}\\s+busybox\\s+\\S+ ago\\s+Running\\s+web\\s+0\\s+${pod.id.slice(0, 13)}\\s+${pod.config.metadata!.name}`));
    const inspect = JSON.parse(skiff(['inspect', id.slice(0, 10)]).stdout) as { status: { id: string }; info: { info: { pid: number } } };
    assert.equal(inspect.status.id, id);
    assert.ok(inspect.info.info.pid > 0);
    assert.equal(JSON.parse(skiff(['inspect', pod.id]).stdout).status.id, pod.id);
  });

  it('reports isolation per container, and the same facts as Prometheus gauges', async () => {
    const pod = await runPod();
    const locked = await startCtr(pod, 'locked', {
      linux: { security_context: { readonly_rootfs: true, no_new_privs: true, capabilities: { add_capabilities: ['NET_ADMIN'] }, seccomp: { profile_type: 1 } }, resources: { memory_limit_in_bytes: 64 << 20, cpu_quota: 50_000, cpu_period: 100_000 } },
    });
    const hostPod = await runPod({ linux: { security_context: { privileged: true, namespace_options: { network: 2, pid: 2, ipc: 2 } } } });
    const open = await startCtr(hostPod, 'open', { linux: { security_context: { privileged: true, namespace_options: { network: 2, pid: 2, ipc: 2 } } } });
    const report = json<{ containers: { id: string; isolation: Isolation }[] }>(['inspect', '--isolation', pod.id]);
    const iso = report.containers.find((c) => c.id === locked)!.isolation;
    assert.ok(iso.observed, 'a running container is checked against the kernel');
    // No cgroup namespace of its own: the shim would root it at its own cgroup (spec.ts).
    assert.deepEqual(iso.namespaces, { mnt: 'private', pid: 'private', net: 'pod', ipc: 'pod', uts: 'pod', user: 'host', cgroup: 'host' });
    assert.deepEqual(iso.limits, { cpus: 0.5, memoryBytes: 64 << 20, pids: null });
    assert.deepEqual(iso.unbounded, ['pids', 'io'], 'CRI gives no pids limit nor IO weight here');
    assert.deepEqual(iso.extraCapabilities, ['CAP_NET_ADMIN']);
    assert.equal(iso.seccomp, 'unconfined');
    // RuntimeDefault AppArmor (unset means it) confines where AppArmor enforces.
    const apparmor = (await detectHostLsm()).apparmor;
    assert.deepEqual([iso.lsm, iso.lsmUnconfined], [{ apparmor: apparmor ? APPARMOR_DEFAULT_PROFILE : null, selinux: null }, !apparmor]);
    assert.deepEqual([iso.noNewPrivileges, iso.privileged, iso.readOnlyRootfs, iso.uid0IsHostRoot], [true, false, true, true]);
    assert.ok(iso.maskedPaths.includes('/proc/kcore'));
    const hostIso = json<{ containers: { id: string; isolation: Isolation }[] }>(['inspect', '--isolation', open]).containers[0].isolation;
    assert.deepEqual([hostIso.namespaces.net, hostIso.namespaces.pid, hostIso.namespaces.ipc, hostIso.privileged], ['host', 'host', 'host', true]);
    assert.deepEqual(hostIso.maskedPaths, [], 'privileged: nothing masked');
    const table = skiff(['inspect', '--isolation', pod.id]);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /CONTAINER\s+MNT\s+PID\s+NET\s+IPC\s+UTS\s+USER\s+CGROUP\s+CPU\s+MEMORY/);
    assert.match(table.stdout, /locked\s+private\s+private\s+pod\s+pod\s+pod\s+host\s+host\s+0\.5\s+67 MB\s+none\s+pids,io\s+NET_ADMIN\s+unconfined\s+(unconfined|apparmor:skiff-default)\s+yes\s+no\s+yes/);

    const status = await skiffd.client.runtime('Status', { verbose: true });
    const address = (JSON.parse(status.info.config) as { metricsAddress: string }).metricsAddress;
    const families = parsePrometheus(await (await fetch(`http://${address}/metrics`)).text());
    const gauge = (container: string, check: string) => families.get('skiff_container_isolation')?.samples.find((s) => s.labels.container === container && s.labels.check === check)?.value;
    assert.equal(gauge('open', 'host_network'), 1);
    assert.equal(gauge('open', 'host_pid'), 1);
    assert.equal(gauge('open', 'privileged'), 1);
    assert.equal(gauge('locked', 'host_network'), 0);
    assert.equal(gauge('locked', 'seccomp_unconfined'), 1);
    assert.equal(gauge('locked', 'lsm_unconfined'), apparmor ? 0 : 1);
    assert.equal(gauge('locked', 'writable_rootfs'), 0);
    assert.equal(gauge('locked', 'extra_capabilities'), 1);
    assert.deepEqual(['no_memory_limit', 'no_pids_limit', 'no_cpu_quota', 'no_io_weight'].map((c) => gauge('locked', c)), [0, 1, 0, 1]);
    assert.deepEqual(['no_memory_limit', 'no_pids_limit', 'no_cpu_quota', 'no_io_weight'].map((c) => gauge('open', c)), [1, 1, 1, 1]);
    assert.equal(families.get('skiff_container_isolation')?.samples.find((s) => s.labels.container === 'open')?.labels.namespace, 'ops');
  });

  it('prints logs by stream, the last lines, and follows until the container exits', async () => {
    const pod = await runPod();
    const id = await startCtr(pod, 'talk', { command: ['sh', '-c', 'echo one; echo two >&2; echo three; sleep 1.5; echo four; printf five'] });
    const f = spawn(process.execPath, [CLI, '--socket', skiffd.socket, 'logs', '-f', id]);
    let out = '';
    let err = '';
    f.stdout.on('data', (d: Buffer) => (out += d.toString()));
    f.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => f.on('close', resolve));
    assert.equal(code, 0);
    assert.equal(out, 'one\nthree\nfour\nfive', 'a last line without newline stays so');
    assert.equal(err, 'two\n');
    assert.equal(skiff(['logs', '--tail', '2', id]).stdout, 'four\nfive');
    assert.match(skiff(['logs', '-t', id]).stdout.split('\n')[0], /^\d{4}-\d\d-\d\dT\S+Z one$/);
  });

  it('runs exec with the command exit code, stdin, and a terminal', async () => {
    const pod = await runPod();
    const id = await startCtr(pod, 'box');
    const r = skiff(['exec', id, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual(r, { status: 3, stdout: 'out\n', stderr: 'err\n' });
    const cat = skiff(['exec', '-i', id, 'cat'], 'piped in\n');
    assert.equal(cat.status, 0, cat.stderr);
    assert.equal(cat.stdout, 'piped in\n');
    const tty = skiff(['exec', '-t', id, '--', 'sh', '-c', 'test -t 1 && echo is-a-tty']);
    assert.equal(tty.status, 0, tty.stderr);
    assert.match(tty.stdout, /is-a-tty/);
  });

  it('shows pull progress per blob while a slow registry serves the layers', async () => {
    const work = runTempDir('skiff-slow-');
    // A proxy in front of the registry that sends blobs at about 1 MB/s.
    const proxy = http.createServer((req, res) => {
      const up = http.request({ host: '127.0.0.1', port: Number(node.reg.host.split(':')[1]), path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        if (!req.url?.includes('/blobs/')) return void r.pipe(res);
        r.on('data', (chunk: Buffer) => {
          r.pause();
          res.write(chunk, () => setTimeout(() => r.resume(), Math.ceil(chunk.length / 1000)));
        });
        r.on('end', () => res.end());
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      await node.reg.pushImage('library/slowbox', '1', [busyboxLayer(work)], undefined, { Cmd: ['sh'] });
      skiffd.mirror('slow.test', `127.0.0.1:${(proxy.address() as { port: number }).port}`);
      const r = await new Promise<Run>((resolve) => {
        const p = spawn(process.execPath, [CLI, '--socket', skiffd.socket, 'pull', '--progress', 'slow.test/library/slowbox:1']);
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        p.on('close', (status) => resolve({ status, stdout, stderr }));
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^slow\.test\/library\/slowbox:1: \S+/);
      const lines = r.stderr.split('\r').map((l) => l.trim()).filter(Boolean);
      assert.ok(lines.length >= 2, `progress redrawn while the pull ran: ${JSON.stringify(lines)}`);
      for (const l of lines) assert.match(l, /^slow\.test\/library\/slowbox:1 \[[#.]{30}\] [\d.]+ (B|kB|MB) \/ [\d.]+ (kB|MB), \d\/2 blobs$/);
    } finally {
      proxy.close();
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  it('shows stats, stops and removes containers and pods, with exit codes a script can use', async () => {
    const pod = await runPod();
    const id = await startCtr(pod, 'busy', { command: ['sh', '-c', 'while :; do :; done'] });
    const stats = json<{ id: string; cpuPercent: number | null; memoryBytes: number | null }[]>(['stats', id]);
    assert.equal(stats.length, 1);
    assert.ok((stats[0].cpuPercent ?? 0) > 20, `a spinning shell uses CPU: ${stats[0].cpuPercent}`);
    assert.ok((stats[0].memoryBytes ?? 0) > 0);
    assert.match(skiff(['stats', '-p', pod.id]).stdout, /CONTAINER\s+NAME\s+CPU %\s+MEM\s+DISK\s+INODES\s+CPU PSI\s+MEM PSI\s+IO PSI\n\S+\s+busy\s+\d+\.\d\d\s.*\s(\d+\.\d\d|-)\s+(\d+\.\d\d|-)\s+(\d+\.\d\d|-)\n/);

    const rmRunning = skiff(['rm', id]);
    assert.equal(rmRunning.status, 1);
    assert.match(rmRunning.stderr, /FAILED_PRECONDITION: container \S+ is running/);
    assert.equal(skiff(['stop', '-t', '0', id]).stdout, `${id}\n`);
    assert.equal((await skiffd.client.runtime('ContainerStatus', { container_id: id })).status?.state, 2);
    assert.equal(skiff(['rm', id]).status, 0);
    assert.equal(skiff(['rm', '-f', pod.id]).status, 0, 'a ready pod goes with -f');
    assert.equal((await skiffd.client.runtime('ListPodSandbox', { filter: { id: pod.id } })).items.length, 0);

    const missing = skiff(['stop', 'f00dfeed']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /NOT_FOUND: no container or pod has an id starting with "f00dfeed"/);
    assert.equal(skiff(['ps', 'extra']).status, 2);
    assert.equal(skiff(['pods', '-o', 'xml']).status, 2);
    assert.equal(spawnSync(process.execPath, [CLI, '--socket', path.join(skiffd.dir, 'nothing.sock'), 'pods']).status, 69);
  });
});
