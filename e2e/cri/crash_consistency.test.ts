// Crash consistency: skiffd is SIGKILLed (or a step fails) at every named step of every
// operation that changes the host (src/failpoints.ts), and the shim dies at each step of
// create, start and exec. After a restart, each operation is complete or undone, the CRI
// lists exactly what succeeded, and the host holds nothing the CRI does not list: mounts,
// shims, cgroups, CNI IPs, veths, iptables rules, files under skiff's roots. Then ten
// clients at once, with skiffd killed at random instants, twenty rounds.
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ALL_FAILPOINTS, FailpointName } from '../../src/failpoints';
import { ContainerState, PodSandboxState, Protocol } from '../../src/cri/gen/cri';
import { findShims } from '../../src/shim/processes';
import { CriPods } from '../fixtures/cri_pods';
import { statusCode } from '../fixtures/grpc';
import { until } from '../fixtures/kubelet';
import { TestNetwork } from '../fixtures/network';
import { busyboxLayer, layerOf } from '../fixtures/images';
import { startBusyboxRegistry } from '../fixtures/node';
import { parsePrometheus } from '../fixtures/prometheus';
import { freePort, TestRegistry } from '../fixtures/registry';
import { cgroupMounts } from '../fixtures/cleanup';
import { TestSkiffd } from '../fixtures/skiffd';

const UNAVAILABLE = 14;
const INTERNAL = 13;
/** An image pulled only by the pull steps (a layer of its own). */
const PULLED = 'busybox:pulled';
/** The containers of the container steps mount an image volume (KEP-4639) too, from a sub
 * path: its mount under the bundle is made and undone with the rest. */
const WITH_IMAGE_VOLUME = { mounts: [{ container_path: '/image', readonly: true, image: { image: 'busybox' }, image_sub_path: 'etc' }] };

/** What the host holds of this skiffd's, one line per thing, each naming its pod,
 * container, image layer or blob where it has one. */
async function hostSnapshot(d: TestSkiffd, net: TestNetwork): Promise<string[]> {
  const out: string[] = [];
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  for (const l of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const m = unescape(l.split(' ')[4] ?? '');
    if (m.startsWith(d.dir + '/')) out.push(`mount ${m}`);
  }
  for (const s of await findShims(path.join(d.state, 'pods'))) out.push(`shim ${s.stateDir}`);
  const walk = (dir: string, rel: string) => {
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
      if (!e.isDirectory()) continue;
      out.push(`cgroup ${rel}/${e.name}`);
      walk(path.join(dir, e.name), `${rel}/${e.name}`);
    }
  };
  for (const h of cgroupMounts()) walk(path.join(h, d.cgroupParent), `${path.basename(h)}:${d.cgroupParent}`);
  const ipam = path.join(net.dataDir, `test-${net.bridge}`);
  for (const f of fs.existsSync(ipam) ? fs.readdirSync(ipam) : []) {
    if (/^\d+\.\d+\.\d+\.\d+$/.test(f)) out.push(`ip ${f} ${fs.readFileSync(path.join(ipam, f), 'utf8').split(/\s/)[0]}`);
  }
  let links: string[] = [];
  try {
    links = execFileSync('ip', ['-o', 'link', 'show', 'master', net.bridge], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean);
  } catch {
    /* no bridge before the first pod */
  }
  for (const l of links) out.push(`veth ${l.split(':')[1].trim().split('@')[0]}`);
  for (const l of execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }).split('\n')) if (l.includes(`test-${net.bridge}`)) out.push(`iptables ${l}`);
  const list = (dir: string, kind: string) => {
    for (const n of fs.existsSync(dir) ? fs.readdirSync(dir) : []) out.push(`${kind} ${n}`);
  };
  list(path.join(d.state, 'pods'), 'pod-dir');
  list(path.join(d.state, 'netns'), 'netns');
  list(path.join(d.state, 'containers'), 'bundle');
  list(path.join(d.root, 'metadata', 'pods'), 'pod-record');
  list(path.join(d.root, 'metadata', 'containers'), 'container-record');
  list(path.join(d.root, 'metadata', 'intents'), 'intent');
  list(path.join(d.root, 'metadata', 'images'), 'image-record');
  list(path.join(d.root, 'cni'), 'cni-cache');
  list(path.join(d.root, 'snapshots', 'containers'), 'writable-layer');
  list(path.join(d.root, 'snapshots', 'layers'), 'layer');
  list(path.join(d.root, 'content', 'blobs', 'sha256'), 'blob');
  list(path.join(d.root, 'content', 'ingest'), 'ingest');
  return out.sort();
}

const minus = (a: string[], b: string[]) => a.filter((x) => !b.includes(x));

/** What a step leaves when the operation it cuts short is settled after a restart. */
type Outcome = { pods: PodSandboxState[]; containers: ContainerState[]; pulled: boolean };

describe('crash consistency: a kill or failure at any step leaves the operation done or undone, and nothing else', function () {
  this.timeout(3_600_000);
  let reg: TestRegistry;
  let skiffd: TestSkiffd;
  let net: TestNetwork;
  let cri: CriPods;
  let baseline: string[];
  let hostPort: number;

  before(async () => {
    reg = await startBusyboxRegistry();
    // The image the pull steps pull: a layer no other image has, so each pull unpacks one.
    const work = fs.mkdtempSync('/tmp/skiff-crash-');
    try {
      fs.writeFileSync(path.join(work, 'only-here'), `${process.pid} ${Date.now()}`);
      await reg.pushImage('library/busybox', 'pulled', [busyboxLayer(work), layerOf(work)], undefined, { Cmd: ['sh'], Env: ['PATH=/bin'] });
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
    skiffd = await TestSkiffd.start({ args: ['--network.write_default_config', 'false'] });
    net = new TestNetwork(path.join(skiffd.dir, 'net.d'), path.join(skiffd.dir, 'ipam'), { portmap: true });
    skiffd.mirror('docker.io', reg.host);
    cri = new CriPods(skiffd, { prefix: 'crash', namespace: 'crash', uidPrefix: 'crash-uid-' });
    await skiffd.client.image('PullImage', { image: { image: 'busybox' } });
    hostPort = await freePort();
    baseline = await hostSnapshot(skiffd, net);
  });

  after(async () => {
    await skiffd?.cleanup();
    net?.remove();
    await reg?.stop();
  });

  /** A pod with a host port (so CNI DEL has portmap rules to take back) and a log dir. */
  const runPod = () => cri.runPod({ port_mappings: [{ protocol: Protocol.TCP, container_port: 80, host_port: hostPort, host_ip: '' }] });

  /** Start skiffd again, armed with `failpoints` (none: disarmed). */
  async function relaunch(failpoints: string): Promise<void> {
    await skiffd.stop();
    await skiffd.restart(failpoints ? { SKIFF_FAILPOINTS: failpoints } : {});
  }

  /** Settle: restart skiffd disarmed (after it killed itself); the CRI and the host must
   * agree with `want`, and once everything is removed through the CRI, the host is as
   * before the step. */
  async function checkSettled(step: string, want: Outcome): Promise<void> {
    await skiffd.stop();
    await skiffd.restart({});
    const c = skiffd.client;
    const pods = (await c.runtime('ListPodSandbox', {})).items;
    const ctrs = (await c.runtime('ListContainers', {})).containers;
    assert.deepEqual(pods.map((p) => p.state).sort(), [...want.pods].sort(), `${step}: pods listed`);
    assert.deepEqual(ctrs.map((x) => x.state).sort(), [...want.containers].sort(), `${step}: containers listed`);
    const images = (await c.image('ListImages', {})).images.flatMap((i) => i.repo_tags);
    assert.equal(images.includes(`docker.io/library/${PULLED}`), want.pulled, `${step}: the pulled image is listed iff its pull was recorded`);
    // Everything on the host beyond the baseline belongs to what the CRI lists.
    const ids = [...pods.map((p) => p.id), ...ctrs.map((x) => x.id)];
    const extra = minus(await hostSnapshot(skiffd, net), baseline);
    const image = want.pulled ? (await c.image('ImageStatus', { image: { image: PULLED } })).image : null;
    const orphans = extra.filter((x) => !ids.some((id) => x.includes(id)) && !/^(veth|layer|blob|image-record) /.test(x));
    assert.deepEqual(orphans, [], `${step}: nothing on the host that the CRI does not list`);
    const ready = pods.filter((p) => p.state === PodSandboxState.SANDBOX_READY).length;
    assert.equal(extra.filter((x) => x.startsWith('veth ')).length, ready, `${step}: one veth per ready pod`);
    assert.equal(extra.filter((x) => x.startsWith('ip ')).length, ready, `${step}: one IP per ready pod`);
    assert.equal(extra.filter((x) => x.startsWith('image-record ')).length, image ? 1 : 0, `${step}: an image record only for a recorded pull`);
    assert.deepEqual(extra.filter((x) => x.startsWith('intent ')), [], `${step}: every intent settled\n${skiffd.log().split('\n').filter((l) => l.includes('recovery could not settle')).join('\n')}`);
    for (const p of pods) await c.runtime('RemovePodSandbox', { pod_sandbox_id: p.id });
    if (image) await c.image('RemoveImage', { image: { image: image.id } });
    assert.deepEqual(minus(await hostSnapshot(skiffd, net), baseline), [], `${step}: the host is as before, once the CRI removed what it lists`);
    assert.deepEqual(minus(baseline, await hostSnapshot(skiffd, net)), [], `${step}: nothing of before is lost`);
  }

  /** Start the operation of a step, once its preparation (a pod, a container) is done. */
  async function runOperation(step: FailpointName): Promise<{ call: Promise<unknown> }> {
    const c = skiffd.client;
    const op = step.slice(0, step.indexOf('.'));
    switch (op) {
      case 'run_pod':
        return { call: runPod() };
      case 'stop_pod':
      case 'remove_pod': {
        const pod = await runPod();
        await cri.startCtr(pod, 'app');
        return { call: c.runtime(op === 'stop_pod' ? 'StopPodSandbox' : 'RemovePodSandbox', { pod_sandbox_id: pod.id }) };
      }
      case 'create_container': {
        const pod = await runPod();
        return { call: cri.createCtr(pod, 'app', WITH_IMAGE_VOLUME) };
      }
      case 'start_container': {
        const pod = await runPod();
        const id = await cri.createCtr(pod, 'app', WITH_IMAGE_VOLUME);
        return { call: c.runtime('StartContainer', { container_id: id }) };
      }
      case 'remove_container': {
        const pod = await runPod();
        const id = await cri.startCtr(pod, 'app', WITH_IMAGE_VOLUME);
        return { call: c.runtime('RemoveContainer', { container_id: id }) };
      }
      case 'pull_image':
        return { call: c.image('PullImage', { image: { image: PULLED } }) };
      default:
        throw new Error(`no operation for ${step}`);
    }
  }

  /** The outcome of a kill at `step`: complete from the step where the outcome is recorded (or,
   * for stops and removals, from the first step: a restart finishes them), else undone. */
  function killOutcome(step: FailpointName): Outcome {
    const [op, at] = step.split('.');
    const none: Outcome = { pods: [], containers: [], pulled: false };
    const ready = [PodSandboxState.SANDBOX_READY];
    switch (op) {
      case 'run_pod':
        return { ...none, pods: at === 'recorded' ? ready : [] };
      case 'stop_pod':
        return { ...none, pods: [PodSandboxState.SANDBOX_NOTREADY], containers: [ContainerState.CONTAINER_EXITED] };
      case 'remove_pod':
        return none;
      case 'create_container':
        return { ...none, pods: ready, containers: at === 'recorded' ? [ContainerState.CONTAINER_CREATED] : [] };
      case 'start_container':
        // From its first step the shim was asked: it runs, and the restart records it so.
        return { ...none, pods: ready, containers: [ContainerState.CONTAINER_RUNNING] };
      case 'remove_container':
        return { ...none, pods: ready };
      case 'pull_image':
        return { ...none, pulled: at === 'recorded' };
      default:
        throw new Error(`no outcome for ${step}`);
    }
  }

  const daemonSteps = ALL_FAILPOINTS.filter((s) => !s.startsWith('shim.'));

  for (const step of daemonSteps) {
    it(`SIGKILL at ${step}: a restart completes or undoes it`, async () => {
      await relaunch(`${step}=kill`);
      const died = skiffd.exited();
      const code = await statusCode((await runOperation(step)).call);
      assert.equal(code, UNAVAILABLE, `${step}: the call is cut off by skiffd's death`);
      await died;
      assert.match(skiffd.log(), new RegExp(`failpoint ${step.replace('.', '\\.')}: SIGKILL`), 'killed at the step, not elsewhere');
      await checkSettled(step, killOutcome(step));
    });
  }

  for (const step of daemonSteps.filter((s) => !s.endsWith('.recorded'))) {
    it(`failure at ${step}: an error that names the step, and nothing half-made`, async () => {
      await relaunch(`${step}=error`);
      const { call } = await runOperation(step);
      const code = await statusCode(call);
      assert.equal(code, INTERNAL, `${step}: the call fails`);
      await assert.rejects(call, new RegExp(`failpoint ${step.replace('.', '\\.')}`));
      const op = step.slice(0, step.indexOf('.'));
      const want = killOutcome(step);
      // A failed run, create or pull is undone at once; a failed start leaves the container
      // exited (StartError); a failed stop or removal is finished by the restart.
      if (op === 'run_pod' || op === 'create_container' || op === 'pull_image') Object.assign(want, killOutcome(`${op}.journaled` as FailpointName));
      if (op === 'start_container') want.containers = [ContainerState.CONTAINER_EXITED];
      await checkSettled(step, want);
    });
  }

  for (const step of ALL_FAILPOINTS.filter((s) => s.startsWith('shim.'))) {
    it(`the shim dies at ${step}: its pod is reported not ready, and its removal leaves nothing`, async () => {
      await relaunch(`${step}=kill`);
      const c = skiffd.client;
      const pod = await runPod();
      const [, what] = step.split('.');
      let ctr = '';
      if (what === 'create') {
        assert.notEqual(await statusCode(cri.createCtr(pod, 'app')), 0, 'CreateContainer fails');
      } else if (what === 'start') {
        ctr = await cri.createCtr(pod, 'app');
        assert.notEqual(await statusCode(c.runtime('StartContainer', { container_id: ctr })), 0, 'StartContainer fails');
      } else {
        ctr = await cri.startCtr(pod, 'app');
        assert.notEqual(await statusCode(c.runtime('ExecSync', { container_id: ctr, cmd: ['true'], timeout: 10 })), 0, 'ExecSync fails');
      }
      await until('the pod reported not ready', async () => (await c.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id })).status?.state === PodSandboxState.SANDBOX_NOTREADY);
      const ctrs = (await c.runtime('ListContainers', {})).containers;
      assert.deepEqual(ctrs.map((x) => x.state), ctr ? [ContainerState.CONTAINER_EXITED] : [], 'a container the shim took along is exited');
      await c.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
      assert.deepEqual(minus(await hostSnapshot(skiffd, net), baseline), [], `${step}: the pod's removal took its cgroups, mounts and files`);
    });
  }

  it('counts what recovery did in skiff_recovered_total', async () => {
    await relaunch('run_pod.network=kill');
    const died = skiffd.exited();
    await statusCode(runPod());
    await died;
    await skiffd.restart({});
    const address = (JSON.parse((await skiffd.client.runtime('Status', { verbose: true })).info.config) as { metricsAddress: string }).metricsAddress;
    const text = await (await fetch(`http://${address}/metrics`)).text();
    const value = parsePrometheus(text).get('skiff_recovered_total')?.samples.find((s) => s.labels.kind === 'op_run_pod')?.value;
    assert.equal(value, 1, 'the interrupted RunPodSandbox counted once');
    assert.match(skiffd.log(), /recovery settled an operation a crash interrupted.*"op":"run_pod".*"outcome":"undone"/);
    assert.deepEqual(minus(await hostSnapshot(skiffd, net), baseline), []);
  });

  it('sweeps what no record owns: a shim, netns, shm mount, CNI entry, cgroup, bundle, image volume mount and writable layer of unknown pods and containers', async () => {
    await relaunch('');
    const pod = await runPod();
    const ctr = await cri.startCtr(pod, 'app', WITH_IMAGE_VOLUME);
    await skiffd.kill();
    // The records go (as if written by a skiffd that lost them): what they owned stays.
    fs.rmSync(path.join(skiffd.root, 'metadata', 'pods', `${pod.id}.json`));
    fs.rmSync(path.join(skiffd.root, 'metadata', 'containers', `${ctr}.json`));
    const before = minus(await hostSnapshot(skiffd, net), baseline);
    for (const kind of ['shim', 'netns', 'mount', 'cgroup', 'cni-cache', 'bundle', 'writable-layer', 'veth', 'ip', 'iptables'])
      assert.ok(before.some((x) => x.startsWith(`${kind} `)), `the leftovers include a ${kind}: ${before.join('\n')}`);
    assert.ok(before.some((x) => x.startsWith('mount ') && x.includes(`${ctr}/image-volumes/0`)), 'the leftovers include the image volume mount');
    await skiffd.restart({});
    assert.deepEqual((await skiffd.client.runtime('ListPodSandbox', {})).items, []);
    assert.deepEqual(minus(await hostSnapshot(skiffd, net), baseline), [], 'the sweep removed every leftover');
    assert.deepEqual(minus(baseline, await hostSnapshot(skiffd, net)), [], 'and nothing else');
    const log = skiffd.log();
    // (The netns sweep's CNI DEL takes the pod's CNI cache entry along, and the bundle's
    // removal the container's writable layer.)
    for (const kind of ['shim', 'netns', 'shm_mount', 'cgroup', 'pod_dir', 'rootfs'])
      assert.match(log, new RegExp(`recovery removed a leftover.*"kind":"${kind}"`), `logged: ${kind}`);
  });

  it('ten clients at once, skiffd SIGKILLed at a random instant, twenty rounds: nothing leaks', async () => {
    await relaunch('');
    for (let round = 0; round < 20; round++) {
      let stop = false;
      const client = async (n: number) => {
        // Each client its own host port: a clash would be a refusal, not a crash.
        while (!stop) {
          try {
            const pod = await cri.runPod({ port_mappings: [{ protocol: Protocol.TCP, container_port: 80, host_port: hostPort + 1 + n, host_ip: '' }] });
            const id = await cri.startCtr(pod, 'app');
            await skiffd.client.runtime('StopContainer', { container_id: id, timeout: 0 });
            await skiffd.client.runtime('RemoveContainer', { container_id: id });
            await skiffd.client.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
            await skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
          } catch {
            return; // skiffd died
          }
        }
      };
      const clients = Array.from({ length: 10 }, (_, n) => client(n));
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 2500));
      stop = true;
      await skiffd.kill();
      await Promise.all(clients);
      await checkSettledAnyOutcome(`round ${round}`);
      await skiffd.restart({});
    }
  });

  /** After a random kill: whatever the CRI lists, the host holds only what belongs to it,
   * and removing it through the CRI brings the host back to the baseline. */
  async function checkSettledAnyOutcome(what: string): Promise<void> {
    await skiffd.restart({});
    const c = skiffd.client;
    const pods = (await c.runtime('ListPodSandbox', {})).items;
    const ctrs = (await c.runtime('ListContainers', {})).containers;
    const ids = [...pods.map((p) => p.id), ...ctrs.map((x) => x.id)];
    const extra = minus(await hostSnapshot(skiffd, net), baseline);
    const unsettled = skiffd.log().split('\n').filter((l) => l.includes('recovery could not settle') || l.includes('start-up sweep failed'));
    assert.deepEqual(extra.filter((x) => !ids.some((id) => x.includes(id)) && !x.startsWith('veth ')), [], `${what}: nothing on the host the CRI does not list\n${unsettled.join('\n')}`);
    const ready = pods.filter((p) => p.state === PodSandboxState.SANDBOX_READY).length;
    assert.equal(extra.filter((x) => x.startsWith('veth ')).length, ready, `${what}: one veth per ready pod`);
    assert.equal(extra.filter((x) => x.startsWith('ip ')).length, ready, `${what}: one IP per ready pod`);
    for (const x of ctrs) assert.ok(pods.some((p) => p.id === x.pod_sandbox_id), `${what}: container ${x.id} belongs to a listed pod`);
    for (const p of pods) await c.runtime('RemovePodSandbox', { pod_sandbox_id: p.id });
    assert.deepEqual(minus(await hostSnapshot(skiffd, net), baseline), [], `${what}: the host is as before once the CRI removed what it lists`);
    await skiffd.stop();
  }
});
