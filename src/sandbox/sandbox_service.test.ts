// The pod lifecycle against fakes of the host, the shim, CNI and the container service:
// a failed run undoes every step it made, newest first, whichever step fails; stop and
// remove are idempotent and a stop cut short is finished by the next; after a restart the
// pods are found again and what a crash interrupted is finished or undone.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { LinuxContainerResources, NamespaceMode } from '../cri/gen/cri';
import { GrpcCode, grpcCode } from '../errors';
import { armFailpoints } from '../failpoints';
import { Logger } from '../log';
import type { NetworkResult, PodNetworkRequest } from '../network/cni';
import type { SpawnOptions } from '../shim/client';
import { FakeShim } from '../shim/fake_shim';
import type { ShimProcess } from '../shim/processes';
import { IntentJournal } from '../store/intents';
import type { PodHost } from './pod_host';
import { PodRecord, PodRegistry, shimDir } from './pod_registry';
import { PodSpec, SandboxService } from './sandbox_service';
import { POD_RANGE_LENGTH, UsernsPool } from './userns_pool';

const PARENT = '/skiff-unit';
const POOL_FIRST = 100 * POD_RANGE_LENGTH;

/** The host as the pod lifecycle sees it: mounts, shims and cgroups in memory. */
class FakeHost implements PodHost {
  readonly failing = new Map<string, Error>();
  /** Methods the next shims' calls fail in. */
  readonly shimFailing = new Map<string, Error>();
  readonly mounts = new Set<string>();
  readonly spawned: FakeShim[] = [];
  /** Shims that answer a connect, by socket. */
  readonly serving = new Map<string, FakeShim>();
  /** Shim processes found by their command line. */
  readonly processes: ShimProcess[] = [];
  readonly cgroups = new Set<string>();

  constructor(readonly calls: string[]) {}

  private step(call: string, method: string): void {
    this.calls.push(call);
    const e = this.failing.get(method);
    if (e) throw e;
  }

  async spawnShim(o: SpawnOptions) {
    this.step('spawn shim', 'spawnShim');
    const shim = new FakeShim(this.calls);
    for (const [m, e] of this.shimFailing) shim.failing.set(m, e);
    this.spawned.push(shim);
    this.serving.set(path.join(o.stateDir, 'shim.sock'), shim);
    return shim.client;
  }

  async connectShim(socketPath: string) {
    this.calls.push('connect shim');
    const shim = this.serving.get(socketPath);
    if (!shim || shim.down) throw Object.assign(new Error(`connect ECONNREFUSED ${socketPath}`), { code: 'ECONNREFUSED' });
    return shim.client;
  }

  async findShims(under: string, pids?: number[]) {
    return this.processes.filter((p) => p.stateDir.startsWith(under + '/') && (!pids || pids.includes(p.pid)));
  }

  async killShim(pid: number) {
    this.calls.push(`kill ${pid}`);
    this.processes.splice(this.processes.findIndex((p) => p.pid === pid), 1);
  }

  mountShm(target: string) {
    this.step('mount shm', 'mountShm');
    this.mounts.add(target);
  }

  unmount(target: string) {
    this.calls.push(`umount ${path.basename(target)}`);
    if (!this.mounts.delete(target)) throw Object.assign(new Error(`umount2 ${target}: EINVAL`), { errno: 22 });
  }

  async mountPoints() {
    return [...this.mounts];
  }

  async makeNetnsMountPoint(_target: string) {
    this.step('netns file', 'makeNetnsMountPoint');
  }

  async bindNetns(_source: string, target: string) {
    this.step('bind netns', 'bindNetns');
    this.mounts.add(target);
  }

  async unbindNetns(target: string) {
    this.calls.push('unbind netns');
    this.mounts.delete(target);
  }

  async removeCgroupTree(rel: string) {
    this.calls.push(`rm cgroup ${rel}`);
    this.cgroups.delete(rel);
  }

  async cgroupChildren(rel: string) {
    return [...this.cgroups].filter((c) => path.posix.dirname(c) === rel).map((c) => path.posix.basename(c));
  }
}

/** CNI with an IP per pod it set up; a cache entry stays until DEL. */
class FakeCni {
  readonly failing = new Map<string, Error>();
  readonly attached = new Map<string, string>();

  constructor(readonly calls: string[]) {}

  private step(call: string, method: string): void {
    this.calls.push(call);
    const e = this.failing.get(method);
    if (e) throw e;
  }

  /** As CniNetwork's: the cache entry first, ADD once `ready` resolves; the entry goes
   * when either fails. */
  async setUp(p: PodNetworkRequest, ready?: Promise<unknown>): Promise<NetworkResult> {
    this.attached.set(p.id, p.netnsPath);
    try {
      await ready;
      this.step('cni add', 'setUp');
    } catch (e) {
      this.attached.delete(p.id);
      throw e;
    }
    return { ips: [{ address: 'fd00::2', family: 6 }, { address: '10.88.0.2', family: 4 }], raw: {} };
  }

  async tearDown(id: string, _netnsPath?: string) {
    this.step('cni del', 'tearDown');
    this.attached.delete(id);
  }

  async check(_id: string, _netnsPath: string) {
    this.step('cni check', 'check');
  }

  async dropTempFiles() {
    return 0;
  }

  async cachedIds() {
    return [...this.attached.keys()];
  }

  /** Plugins an earlier skiffd left running on a netns under the dir: none finish here. */
  orphans = 0;
  async waitForOrphanedPlugins(netnsDir: string) {
    this.calls.push(`wait for plugins under ${path.basename(netnsDir)}`);
    return this.orphans;
  }
}

function spec(name: string, o: Partial<PodSpec> = {}): PodSpec {
  const metadata = { name, namespace: 'ns', uid: `uid-${name}`, attempt: 0 };
  return {
    config: { metadata, hostname: '', log_directory: '', dns_config: null, port_mappings: [], labels: { app: name }, annotations: {}, linux: null, windows: null },
    name: metadata,
    runtimeHandler: '',
    hostname: name,
    hostNetwork: false,
    pidMode: NamespaceMode.CONTAINER,
    ipcMode: NamespaceMode.POD,
    userns: null,
    sysctls: {},
    dns: null,
    portMappings: [],
    cgroup: { parent: '', resources: null, overhead: null },
    ...o,
  };
}

const res = (memory: number): LinuxContainerResources => ({
  cpu_period: 0, cpu_quota: 0, cpu_shares: 0, memory_limit_in_bytes: memory, oom_score_adj: 0,
  cpuset_cpus: '', cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: 0,
});

describe('SandboxService', () => {
  let dir: string;
  let calls: string[];
  let host: FakeHost;
  let cni: FakeCni;
  let warnings: string[];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-pods-'));
    calls = [];
    host = new FakeHost(calls);
    cni = new FakeCni(calls);
    warnings = [];
  });
  afterEach(() => {
    armFailpoints([]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A sandbox service on the test's dirs: a start of skiffd. */
  async function start() {
    const log = new Logger('warn', {}, { write: (l: string) => warnings.push(l) } as unknown as NodeJS.WritableStream, false);
    const journal = new IntentJournal(path.join(dir, 'root', 'metadata', 'intents'), () => {});
    await journal.init();
    const pods = new PodRegistry(path.join(dir, 'root'), log);
    const containers = {
      stopAllInPod: async (id: string) => void calls.push(`stop containers ${id}`),
      removeAllInPod: async (id: string) => void calls.push(`remove containers ${id}`),
    };
    const state = path.join(dir, 'state');
    const usernsPool = new UsernsPool({ dir: path.join(dir, 'root', 'userns'), firstHostId: POOL_FIRST, ranges: 8, warn: (m) => warnings.push(m) });
    const svc = new SandboxService({ state, shimBinary: '/no/skiff-shim', runtimeHandler: 'skiff', defaultCgroupParent: PARENT, pods, containers, cni, host, log, journal, usernsPool });
    await svc.init();
    return { svc, journal, usernsPool, podDirs: () => fs.readdirSync(path.join(state, 'pods')) };
  }

  const after = (call: string) => calls.slice(calls.lastIndexOf(call) + 1);

  it('runs a pod: its files, /dev/shm, the shim, the netns and CNI, recorded READY with its IPs', async () => {
    const { svc, journal } = await start();
    const changes: string[] = [];
    svc.onChange((c, r) => changes.push(`${c} ${r.config.metadata?.name}`));
    const r = await svc.run(spec('web'));
    assert.equal(r.state, 'ready');
    assert.deepEqual(r.ips, ['10.88.0.2', 'fd00::2'], 'IPv4 first');
    assert.equal(r.cgroupParent, `${PARENT}/skiff-pod-${r.id}`);
    assert.equal(fs.readFileSync(r.hostnamePath, 'utf8'), 'web\n');
    // The pod's files, /dev/shm and the netns mount point are made beside the shim; ADD
    // waits for both.
    const files = ['netns file', 'mount shm'];
    assert.deepEqual(calls.filter((c) => !files.includes(c)), ['spawn shim', 'shim pod', 'shim subscribe', 'bind netns', 'cni add']);
    assert.deepEqual(calls.filter((c) => files.includes(c)), files);
    assert.ok(calls.indexOf('netns file') < calls.indexOf('bind netns') && calls.indexOf('mount shm') < calls.indexOf('cni add'), 'the netns bound on its file, ADD after /dev/shm');
    assert.deepEqual([...host.mounts].sort(), [r.netnsPath, r.shmPath].sort());
    assert.equal(host.spawned[0].podParams?.cgroupsPath, `${r.cgroupParent}/${r.id}`);
    assert.deepEqual(await journal.pending(), []);
    assert.deepEqual(changes, ['created web', 'started web']);
    await assert.rejects(svc.run(spec('web')), (e) => grpcCode(e) === GrpcCode.ALREADY_EXISTS);
  });

  const failures: [string, () => void][] = [
    ['recording the intent', () => armFailpoints(['run_pod.journaled=error'])],
    ['writing the pod files', () => armFailpoints(['run_pod.dir=error'])],
    ['mounting /dev/shm', () => host.failing.set('mountShm', new Error('ENOSPC'))],
    ['after /dev/shm', () => armFailpoints(['run_pod.shm=error'])],
    ['starting the shim', () => host.failing.set('spawnShim', new Error('skiff-shim failed to start'))],
    ["making the pod's namespaces", () => host.shimFailing.set('pod', new Error('clone: EPERM'))],
    ['subscribing to exits', () => host.shimFailing.set('subscribe', new Error('connection reset'))],
    ['after the shim', () => armFailpoints(['run_pod.shim=error'])],
    ['pinning the netns', () => host.failing.set('bindNetns', new Error('mount: EACCES'))],
    ['after the netns', () => armFailpoints(['run_pod.netns=error'])],
    ['CNI ADD', () => cni.failing.set('setUp', new Error('plugin bridge: no IP left'))],
    ['after the network', () => armFailpoints(['run_pod.network=error'])],
  ];
  for (const [step, fail] of failures) {
    it(`undoes a run that fails at ${step}: nothing is left, the intent is dropped, the name is free`, async () => {
      const { svc, journal, podDirs } = await start();
      fail();
      await assert.rejects(svc.run(spec('web')));
      assert.deepEqual(svc.list(), []);
      assert.deepEqual(await journal.pending(), []);
      assert.deepEqual([...host.mounts], []);
      assert.deepEqual(podDirs(), []);
      assert.deepEqual([...cni.attached.keys()], [], 'the CNI entry written beside the shim is gone');
      if (step !== 'CNI ADD' && step !== 'after the network') assert.ok(!calls.includes('cni add'), 'no ADD after a step before it failed, in either branch');
      for (const shim of host.spawned) assert.ok(shim.calls.includes('shim shutdown') || shim.failing.has('pod'), 'the shim is shut down');
      if (step !== 'recording the intent') assert.match(calls.join('\n'), new RegExp(`^rm cgroup ${PARENT}/skiff-pod-[0-9a-f]{64}$`, 'm'));
      armFailpoints([]);
      host.failing.clear();
      host.shimFailing.clear();
      cni.failing.clear();
      assert.equal((await svc.run(spec('web'))).state, 'ready');
    });
  }

  it('undoes newest first', async () => {
    const { svc } = await start();
    armFailpoints(['run_pod.network=error']);
    await assert.rejects(svc.run(spec('web')), /failpoint run_pod\.network/);
    const undone = after('cni add').map((c) => c.replace(/[0-9a-f]{64}/, 'ID'));
    // /dev/shm and the netns mount point were made beside the shim's steps: their undoing
    // falls among theirs, after the CNI DEL that needs the netns and before the cgroups go.
    const files = ['unbind netns', 'umount shm'];
    assert.deepEqual(undone.filter((c) => !files.includes(c)), ['cni del', 'shim shutdown', 'connect shim', `rm cgroup ${PARENT}/skiff-pod-ID`]);
    for (const f of files) assert.ok(undone.indexOf(f) >= 0 && undone.indexOf(f) < undone.length - 1, f);
    assert.ok(undone.indexOf('unbind netns') > undone.indexOf('cni del'), 'the netns is unbound after CNI DEL');
  });

  it('keeps the intent of a run whose undo failed, and the restart undoes what is left', async () => {
    const first = await start();
    cni.failing.set('setUp', new Error('plugin timed out'));
    cni.failing.set('tearDown', new Error('plugin timed out'));
    await assert.rejects(first.svc.run(spec('web')), /plugin timed out/);
    const [intent] = await first.journal.pending();
    assert.equal(intent.op, 'run_pod');
    assert.match(warnings.join(''), /undo step failed.*CNI DEL.*plugin timed out/);
    cni.failing.clear();
    calls.length = 0;
    const again = await start();
    assert.equal(await again.svc.recoverIntent(intent), 'undone');
    assert.ok(calls.includes('cni del'));
    assert.deepEqual(again.podDirs(), []);
  });

  it('stops containers first, then the network, the shim and /dev/shm; the record stays NOT READY; a second stop succeeds', async () => {
    const { svc, journal } = await start();
    const r = await svc.run(spec('web'));
    await svc.stop(r.id.slice(0, 12));
    assert.deepEqual(after('cni add'), [`stop containers ${r.id}`, 'cni del', 'unbind netns', 'shim shutdown', 'umount shm']);
    assert.equal(svc.get(r.id)?.state, 'notready');
    assert.equal(svc.shim(r.id), undefined);
    assert.deepEqual(await journal.pending(), []);
    await svc.stop(r.id);
    assert.equal(svc.get(r.id)?.state, 'notready');
    await svc.stop('f'.repeat(64));
    await assert.rejects(svc.stop(''), (e) => grpcCode(e) === GrpcCode.INVALID_ARGUMENT);
  });

  it('a stop cut short by a failing step leaves the pod READY with its intent; the next stop finishes it', async () => {
    const { svc, journal } = await start();
    const r = await svc.run(spec('web'));
    cni.failing.set('tearDown', new Error('plugin bridge: busy'));
    await assert.rejects(svc.stop(r.id), /busy/);
    assert.equal(svc.get(r.id)?.state, 'ready');
    assert.deepEqual((await journal.pending()).map((i) => i.op), ['stop_pod']);
    cni.failing.clear();
    await svc.stop(r.id);
    assert.equal(svc.get(r.id)?.state, 'notready');
    assert.ok(host.spawned[0].down);
    assert.deepEqual(await journal.pending(), []);
  });

  it('removes a pod: stopped, its containers removed, then its cgroups, dir and record; the name is free again', async () => {
    const { svc, journal, podDirs } = await start();
    const r = await svc.run(spec('web'));
    await svc.remove(r.id);
    assert.deepEqual(after('umount shm'), [`remove containers ${r.id}`, `rm cgroup ${r.cgroupParent}`]);
    assert.equal(svc.get(r.id), undefined);
    assert.deepEqual(podDirs(), []);
    assert.deepEqual(await journal.pending(), []);
    await svc.remove(r.id);
    assert.equal((await svc.run(spec('web'))).state, 'ready');
  });

  it("leaves the cgroups alone at removal when the pod's shim shut down saying it removed them", async () => {
    const { svc } = await start();
    const r = await svc.run(spec('web'));
    host.spawned[0].cgroupsRemovedAtShutdown = true;
    await svc.remove(r.id);
    assert.deepEqual(after('umount shm'), [`remove containers ${r.id}`]);
    assert.equal(svc.get(r.id), undefined);
  });

  it('after a restart, attaches the shims that answer and makes the pods whose shim is gone NOT READY', async () => {
    const first = await start();
    const a = await first.svc.run(spec('a'));
    const b = await first.svc.run(spec('b'));
    const hostNet = await first.svc.run(spec('h', { hostNetwork: true, ipcMode: NamespaceMode.NODE }));
    first.svc.detach();
    host.serving.delete(path.join(shimDir(b), 'shim.sock'));
    const { svc } = await start();
    assert.equal(svc.get(a.id)?.state, 'ready');
    assert.ok(svc.shim(a.id));
    assert.equal(svc.get(b.id)?.state, 'notready');
    assert.equal(svc.get(hostNet.id)?.state, 'ready');
    assert.equal(svc.get(hostNet.id)?.netnsPath, '');
    await assert.rejects(svc.run(spec('a')), (e) => grpcCode(e) === GrpcCode.ALREADY_EXISTS, 'names are held across the restart');
    const lost: string[] = [];
    svc.onShimLost((id) => lost.push(id));
    host.spawned[0].lose();
    assert.deepEqual(lost, [a.id]);
    assert.equal(svc.shim(a.id), undefined);
    assert.throws(() => svc.requireReady(a.id), (e) => grpcCode(e) === GrpcCode.FAILED_PRECONDITION);
  });

  it('after a restart, finishes an interrupted pod resize, or goes back to the resources before it', async () => {
    const first = await start();
    const pods = new PodRegistry(path.join(dir, 'root'), new Logger('error'));
    const ok = await first.svc.run(spec('ok', { cgroup: { parent: '', resources: res(64 << 20), overhead: null } }));
    const refused = await first.svc.run(spec('refused', { cgroup: { parent: '', resources: res(64 << 20), overhead: null } }));
    await pods.loadPods();
    const previous = { resources: res(64 << 20), overhead: null, updatedAt: 1 };
    const pending = (r: PodRecord): PodRecord => ({ ...r, podResources: { resources: res(128 << 20), overhead: null, updatedAt: 2, pending: { previous } } });
    await pods.save(pending(ok));
    await pods.save(pending(refused));
    host.spawned[1].failing.set('updatePod', new Error('memory.max: EBUSY'));
    first.svc.detach();
    const { svc } = await start();
    assert.deepEqual(svc.get(ok.id)?.podResources, { resources: res(128 << 20), overhead: null, updatedAt: 2 });
    assert.deepEqual(svc.get(refused.id)?.podResources, previous);
    assert.equal(calls.filter((c) => c === 'shim updatePod').length, 2, 'applied again on both pods');
  });

  it("recovers an interrupted run: the shim found by its command line, CNI, the netns, /dev/shm, cgroups and the dir go", async () => {
    const { svc, journal, podDirs } = await start();
    const id = 'a'.repeat(64);
    const podDir = path.join(dir, 'state', 'pods', id);
    const plan = { dir: podDir, netnsPath: path.join(dir, 'state', 'netns', id), shmPath: path.join(podDir, 'shm'), cgroupParent: `${PARENT}/skiff-pod-${id}`, ownsCgroup: true };
    const intent = await journal.begin('run_pod', id, plan);
    fs.mkdirSync(path.join(podDir, 'shim'), { recursive: true });
    host.mounts.add(plan.netnsPath).add(plan.shmPath);
    host.processes.push({ pid: 77, stateDir: path.join(podDir, 'shim') });
    cni.attached.set(id, plan.netnsPath);
    assert.equal(await svc.recoverIntent(intent), 'undone');
    assert.deepEqual(calls, ['connect shim', 'kill 77', 'cni del', 'unbind netns', 'umount shm', `rm cgroup ${plan.cgroupParent}`]);
    assert.deepEqual([...host.mounts], []);
    assert.deepEqual(podDirs(), []);
    assert.deepEqual([...cni.attached.keys()], []);
  });

  it('recovers an interrupted stop or remove of a recorded pod by doing it again', async () => {
    const { svc, journal } = await start();
    const a = await svc.run(spec('a'));
    const b = await svc.run(spec('b'));
    assert.equal(await svc.recoverIntent(await journal.begin('stop_pod', a.id, {})), 'finished');
    assert.equal(svc.get(a.id)?.state, 'notready');
    assert.equal(await svc.recoverIntent(await journal.begin('remove_pod', b.id, {})), 'finished');
    assert.equal(svc.get(b.id), undefined);
    assert.equal(await svc.recoverIntent(await journal.begin('remove_pod', b.id, {})), 'finished', 'a removal that got through');
  });

  it('waits for the CNI plugins a crash left running before recovery runs DEL, and says so', async () => {
    const { svc } = await start();
    cni.orphans = 2;
    await svc.awaitOrphanedPlugins();
    assert.deepEqual(calls, ['wait for plugins under netns']);
    assert.match(warnings.join(''), /recovery waited for CNI plugins an earlier skiffd left running.*"plugins":2/);
  });

  it('sweeps what no pod record owns: shims, mounts, netns, CNI entries, cgroups, dirs', async () => {
    const { svc, podDirs } = await start();
    const kept = await svc.run(spec('kept'));
    const gone = 'b'.repeat(64);
    const goneDir = path.join(dir, 'state', 'pods', gone);
    fs.mkdirSync(path.join(goneDir, 'shim'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'state', 'netns', gone), '');
    host.processes.push({ pid: 88, stateDir: path.join(goneDir, 'shim') });
    host.mounts.add(path.join(goneDir, 'shm')).add(path.join(dir, 'state', 'netns', gone));
    host.cgroups.add(`${PARENT}/skiff-pod-${gone}`).add(`${PARENT}/skiff-pod-${kept.id}`).add(`${PARENT}/other`);
    cni.attached.set(gone, '');
    await svc.sweep();
    assert.deepEqual(podDirs(), [kept.id]);
    assert.deepEqual([...host.mounts].sort(), [kept.netnsPath, kept.shmPath].sort());
    assert.deepEqual(host.processes, []);
    assert.deepEqual([...host.cgroups].sort(), [`${PARENT}/other`, `${PARENT}/skiff-pod-${kept.id}`]);
    assert.deepEqual([...cni.attached.keys()], [kept.id]);
  });

  it('leaves the search for a shim whose pod dir is gone too until the socket answers, then kills it', async () => {
    const { svc } = await start();
    const kept = await svc.run(spec('kept'));
    const orphan = { pid: 89, stateDir: path.join(dir, 'state', 'pods', 'c'.repeat(64), 'shim') };
    host.processes.push(orphan);
    await svc.sweep();
    assert.deepEqual(host.processes, [orphan], 'no unknown pod dir: /proc is not searched before serving');
    await svc.afterStart();
    assert.deepEqual(host.processes, []);
    assert.ok(svc.get(kept.id));
    assert.match(warnings.join(''), /recovery removed a leftover.*"kind":"shim".*"pid":89/);
  });

  const poolRun = (name: string) => spec(name, { runtimeHandler: 'skiff-userns', usernsFromPool: true });
  const allocated = () => fs.readdirSync(path.join(dir, 'root', 'userns')).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5));
  const mapping = (hostID: number) => [{ containerID: 0, hostID, size: POD_RANGE_LENGTH }];

  it('gives a pod of the userns pool its range: recorded before the shim makes the namespace, kept in the pod record, back at removal', async () => {
    const { svc, usernsPool } = await start();
    const a = await svc.run(poolRun('a'));
    const b = await svc.run(poolRun('b'));
    assert.deepEqual([a.usernsRange, b.usernsRange], [{ hostId: POOL_FIRST, length: POD_RANGE_LENGTH }, { hostId: POOL_FIRST + POD_RANGE_LENGTH, length: POD_RANGE_LENGTH }]);
    assert.deepEqual(host.spawned[0].podParams?.userns, { uidMappings: mapping(POOL_FIRST), gidMappings: mapping(POOL_FIRST) });
    assert.deepEqual(allocated().sort(), [a.id, b.id].sort());
    assert.equal((await svc.run(spec('plain'))).usernsRange, undefined);
    await svc.remove(a.id);
    assert.deepEqual(allocated(), [b.id]);
    assert.equal(usernsPool.rangeOf(a.id), undefined);
    assert.equal((await svc.run(poolRun('c'))).usernsRange?.hostId, POOL_FIRST, "a's range is given again");
    // A restart reads them back: b's and c's ranges are not given a third time.
    const again = await start();
    assert.equal((await again.svc.run(poolRun('d'))).usernsRange?.hostId, POOL_FIRST + 2 * POD_RANGE_LENGTH);
  });

  it('gives the range of a failed run back once the run is undone in full, and keeps it for the restart when the undo failed', async () => {
    const first = await start();
    host.shimFailing.set('pod', new Error('clone: EPERM'));
    await assert.rejects(first.svc.run(poolRun('a')), /EPERM/);
    assert.deepEqual(allocated(), []);
    host.shimFailing.clear();
    cni.failing.set('setUp', new Error('plugin timed out'));
    cni.failing.set('tearDown', new Error('plugin timed out'));
    await assert.rejects(first.svc.run(poolRun('b')), /plugin timed out/);
    const [intent] = await first.journal.pending();
    assert.deepEqual(allocated(), [intent.id], 'held while the pod may still hold something');
    cni.failing.clear();
    const again = await start();
    assert.equal((await again.svc.run(poolRun('c'))).usernsRange?.hostId, POOL_FIRST + POD_RANGE_LENGTH, 'not given while held');
    assert.equal(await again.svc.recoverIntent(intent), 'undone');
    assert.ok(!allocated().includes(intent.id));
    assert.match(warnings.join(''), /recovery removed a leftover.*"kind":"userns_range"/);
  });

  it('gives back the range of a pod whose record vanished: at the sweep with its pod dir, else after the search for its shim', async () => {
    const first = await start();
    const noDir = await first.svc.run(poolRun('a'));
    fs.rmSync(path.join(dir, 'root', 'metadata', 'pods', `${noDir.id}.json`));
    fs.rmSync(noDir.dir, { recursive: true });
    host.processes.push({ pid: 78, stateDir: shimDir(noDir) });
    const second = await start();
    await second.svc.sweep();
    assert.deepEqual(allocated(), [noDir.id], 'no pod dir: its shim is searched for once the socket answers, and its range held until then');
    assert.equal((await second.svc.run(poolRun('b'))).usernsRange?.hostId, POOL_FIRST + POD_RANGE_LENGTH);
    await second.svc.afterStart();
    assert.equal(host.processes.length, 0, 'its shim was killed');
    assert.equal(allocated().includes(noDir.id), false);

    const withDir = await second.svc.run(poolRun('c'));
    assert.equal(withDir.usernsRange?.hostId, POOL_FIRST, "a's range is given again");
    fs.rmSync(path.join(dir, 'root', 'metadata', 'pods', `${withDir.id}.json`));
    host.processes.push({ pid: 77, stateDir: shimDir(withDir) });
    const third = await start();
    await third.svc.sweep();
    assert.equal(host.processes.length, 0, 'its pod dir called for the search before the sweep ended');
    assert.equal(allocated().includes(withDir.id), false);
    assert.match(warnings.join(''), /recovery removed a leftover.*"kind":"userns_range"/);
  });
});
