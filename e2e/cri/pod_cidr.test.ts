// UpdateRuntimeConfig's pod CIDR on skiff's own default network, over gRPC with a real
// skiffd and real pods: a change of range while pods run, the bridges left consistent,
// restarts, an operator's config never rewritten, and nothing left on the host.
import assert from 'node:assert/strict';
import type { ServiceError } from '@grpc/grpc-js';
import { execFileSync } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { PodSandboxConfig } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { runTempDir } from '../fixtures/cleanup';
import { busyboxLayer } from '../fixtures/images';
import { TestRegistry } from '../fixtures/registry';
import { TestSkiffd } from '../fixtures/skiffd';

const INVALID_ARGUMENT = 3;
const FAILED_PRECONDITION = 9;
const CONFLIST = '10-skiff-bridge.conflist';

/** IPv4 routes of the host as [network, prefix]. */
function hostRoutes(): [number, number][] {
  const out: [number, number][] = [];
  for (const line of execFileSync('ip', ['-4', 'route', 'show', 'table', 'all']).toString().split('\n')) {
    const m = /^(?:\S+ )?(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?/.exec(line.replace(/^(local|broadcast|unicast) /, ''));
    if (m) out.push([ipNum(m[1]), Number(m[2] ?? 32)]);
  }
  return out;
}
const ipNum = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const overlaps = (a: [number, number], b: [number, number]) => {
  const p = Math.min(a[1], b[1]);
  const mask = (n: number) => Math.floor(n / 2 ** (32 - p));
  return mask(a[0]) === mask(b[0]);
};

/** n /24s in 10.230.0.0/15-10.239.255.0 (other suites pick 10.100-10.199) that no host
 * route and no other pick overlaps. */
function pickSubnets(n: number): string[] {
  const taken = hostRoutes().filter(([, p]) => p > 0);
  const out: string[] = [];
  while (out.length < n) {
    const s = `10.${230 + Math.floor(Math.random() * 10)}.${Math.floor(Math.random() * 250)}.0`;
    const cand: [number, number] = [ipNum(s), 24];
    if (taken.some((t) => overlaps(t, cand))) continue;
    taken.push(cand);
    out.push(`${s}/24`);
  }
  return out;
}
const gatewayOf = (subnet: string) => subnet.replace(/\.0\/24$/, '.1');
const inRange = (ip: string | undefined, subnet: string) => !!ip && ip.startsWith(subnet.replace(/0\/24$/, ''));

/** The IPv4 addresses (with prefix) of a link; undefined when there is no such link. */
function ipv4Of(link: string): string[] | undefined {
  if (!fs.existsSync(`/sys/class/net/${link}`)) return undefined;
  return execFileSync('ip', ['-4', '-o', 'addr', 'show', 'dev', link]).toString().split('\n').map((l) => /inet (\S+)/.exec(l)?.[1]).filter((a): a is string => !!a);
}
const ports = (bridge: string) => (fs.existsSync(`/sys/class/net/${bridge}/brif`) ? fs.readdirSync(`/sys/class/net/${bridge}/brif`) : []);

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('pod CIDR from UpdateRuntimeConfig on the default network (skiffd over gRPC)', function () {
  this.timeout(180_000);
  // Names and ranges of this run only: bridge stems of 9 bytes leave room for "-N".
  const bridge = `skp${randomBytes(3).toString('hex')}`;
  const bridges = [bridge, ...Array.from({ length: 9 }, (_, i) => `${bridge}-${i + 1}`)];
  const [rangeA, rangeB, rangeC] = pickSubnets(3);
  let reg: TestRegistry;
  let skiffd: TestSkiffd;
  let ipamDir: string;
  let seq = 0;

  const conflist = () => path.join(skiffd.dir, 'net.d', CONFLIST);
  const readConf = () => JSON.parse(fs.readFileSync(conflist(), 'utf8')) as { skiff?: { writtenBy?: string }; plugins: { bridge?: string; ipam?: { ranges: { subnet: string }[][]; dataDir?: string } }[] };
  const recordFile = () => path.join(skiffd.root, 'network', 'pod-cidr.json');
  const update = (pod_cidr: string) => skiffd.client.runtime('UpdateRuntimeConfig', { runtime_config: { network_config: { pod_cidr } } });
  const ipamFiles = () => {
    const dir = path.join(ipamDir, 'skiff');
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n)) : [];
  };

  /** A running pod with one sleeping container, its IP and the gateway it was given. */
  const runPod = async () => {
    const n = ++seq;
    const config: Reply<PodSandboxConfig> = { metadata: { name: `cidr${n}`, namespace: 'e2e', uid: `cidr-uid-${n}`, attempt: 0 }, hostname: `cidr${n}`, log_directory: path.join(skiffd.dir, 'logs', `cidr${n}`), linux: {} };
    const c = skiffd.client;
    const { pod_sandbox_id: id } = await c.runtime('RunPodSandbox', { config });
    const { container_id: ctr } = await c.runtime('CreateContainer', { pod_sandbox_id: id, config: { metadata: { name: 'sleep', attempt: 0 }, image: { image: 'busybox' }, command: ['sleep', '1000'], log_path: 'sleep.log' }, sandbox_config: config });
    await c.runtime('StartContainer', { container_id: ctr });
    const st = await c.runtime('PodSandboxStatus', { pod_sandbox_id: id });
    return { id, ctr, ip: st.status?.network?.ip ?? '' };
  };
  const removePod = async (id: string) => {
    await skiffd.client.runtime('StopPodSandbox', { pod_sandbox_id: id });
    await skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: id });
  };
  /** The container pings the address once (busybox ping; CAP_NET_RAW is a default cap). */
  const pings = async (ctr: string, ip: string) => (await skiffd.client.runtime('ExecSync', { container_id: ctr, cmd: ['ping', '-c', '1', '-W', '3', ip], timeout: 20 })).exit_code === 0;
  const reaches = async (ctr: string, ip: string) => {
    for (let i = 0; i < 10; i++) if (await pings(ctr, ip)) return true;
    return false;
  };

  before(async () => {
    reg = await TestRegistry.start();
    const work = runTempDir('skiff-cidr-');
    try {
      await reg.pushImage('library/busybox', 'latest', [busyboxLayer(work)]);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
    ipamDir = runTempDir('skiff-cidr-ipam-');
    skiffd = await TestSkiffd.start({ args: ['--network.bridge', bridge, '--network.default_pod_cidr', rangeA, '--network.ipam_data_dir', ipamDir] });
    skiffd.mirror('docker.io', reg.host);
    await skiffd.client.image('PullImage', { image: { image: 'busybox' } });
  });
  after(async () => {
    try {
      await skiffd?.cleanup();
    } finally {
      // The bridges skiffd made under this run's names (the current one stays while skiffd runs).
      for (const b of bridges) if (fs.existsSync(`/sys/class/net/${b}`)) execFileSync('ip', ['link', 'del', b], { stdio: 'ignore' });
      if (ipamDir) fs.rmSync(ipamDir, { recursive: true, force: true });
      await reg?.stop();
    }
  });

  let podA: Awaited<ReturnType<typeof runPod>>;
  let podB: Awaited<ReturnType<typeof runPod>>;
  let currentBridge: string;

  it('writes its default network marked as its own, on its bridge and range, and pods reach the gateway', async () => {
    const conf = readConf();
    assert.equal(conf.skiff?.writtenBy, 'skiffd');
    assert.equal(conf.plugins[0].bridge, bridge);
    assert.deepEqual(conf.plugins[0].ipam?.ranges, [[{ subnet: rangeA }]]);
    assert.equal(conf.plugins[0].ipam?.dataDir, ipamDir);
    podA = await runPod();
    assert.ok(inRange(podA.ip, rangeA), podA.ip);
    assert.ok(await reaches(podA.ctr, gatewayOf(rangeA)));
    assert.ok(!(await pings(podA.ctr, rangeA.replace(/0\/24$/, '254'))), 'an address nobody has does not answer');
    assert.deepEqual(ipv4Of(bridge), [`${gatewayOf(rangeA)}/24`]);
    assert.ok(ipamFiles().includes(podA.ip), 'host-local keeps its state in the configured dir');
  });

  it('answers a bad pod CIDR with INVALID_ARGUMENT naming the field, and changes nothing', async () => {
    const before = fs.readFileSync(conflist(), 'utf8');
    for (const bad of ['nonsense', '10.1.0.0/33', '10.1.0.0', `${rangeB},${rangeC}`]) {
      const err = await update(bad).then(() => undefined, (e: ServiceError) => e);
      assert.equal(err?.code, INVALID_ARGUMENT, bad);
      assert.match(err?.details ?? '', /pod_cidr/, bad);
    }
    assert.equal(fs.readFileSync(conflist(), 'utf8'), before);
    assert.ok(!fs.existsSync(recordFile()));
  });

  it('puts new pods on the new range on a second bridge; pods on the old range keep theirs', async () => {
    await update(rangeB);
    const conf = readConf();
    assert.equal(conf.skiff?.writtenBy, 'skiffd');
    assert.deepEqual(conf.plugins[0].ipam?.ranges, [[{ subnet: rangeB }]]);
    assert.equal(conf.plugins[0].bridge, `${bridge}-1`, 'the old bridge still carries a pod');
    assert.deepEqual(JSON.parse(fs.readFileSync(recordFile(), 'utf8')), { podCidr: rangeB });
    // The same CIDR again: nothing happens.
    const st = fs.statSync(conflist());
    await update(rangeB);
    const again = fs.statSync(conflist());
    assert.deepEqual([again.ino, again.mtimeMs], [st.ino, st.mtimeMs]);

    podB = await runPod();
    assert.ok(inRange(podB.ip, rangeB), podB.ip);
    assert.ok(await reaches(podB.ctr, gatewayOf(rangeB)));
    assert.ok(await reaches(podA.ctr, gatewayOf(rangeA)), 'the old pod keeps its gateway');
    assert.deepEqual(ipv4Of(bridge), [`${gatewayOf(rangeA)}/24`]);
    assert.deepEqual(ipv4Of(`${bridge}-1`), [`${gatewayOf(rangeB)}/24`]);
    const info = JSON.parse((await skiffd.client.runtime('Status', { verbose: true })).info.config) as { podCidr: string };
    assert.equal(info.podCidr, rangeB);
    // A range inside one that pods still use would make the host's routes ambiguous.
    const text = fs.readFileSync(conflist(), 'utf8');
    const err = await update(rangeA.replace('/24', '/25')).then(() => undefined, (e: ServiceError) => e);
    assert.equal(err?.code, FAILED_PRECONDITION);
    assert.match(err?.details ?? '', new RegExp(`overlaps ${rangeA.replace(/\./g, '\\.')}`));
    assert.equal(fs.readFileSync(conflist(), 'utf8'), text);
    assert.deepEqual(JSON.parse(fs.readFileSync(recordFile(), 'utf8')), { podCidr: rangeB });
  });

  it('keeps the recorded range, the file and both bridges across a SIGKILL of skiffd', async () => {
    const text = fs.readFileSync(conflist(), 'utf8');
    await skiffd.kill();
    await skiffd.restart();
    assert.equal(fs.readFileSync(conflist(), 'utf8'), text);
    const podB2 = await runPod();
    assert.ok(inRange(podB2.ip, rangeB), podB2.ip);
    assert.ok(await reaches(podA.ctr, gatewayOf(rangeA)));
    assert.deepEqual(ipv4Of(bridge), [`${gatewayOf(rangeA)}/24`]);
    await removePod(podB2.id);
  });

  it('finishes a change a crash interrupted: a restart brings its file to the recorded range', async () => {
    // As if skiffd died between recording a CIDR and rewriting its file.
    await skiffd.kill();
    const onDisk = fs.readFileSync(conflist(), 'utf8');
    fs.writeFileSync(recordFile(), JSON.stringify({ podCidr: rangeC }));
    await skiffd.restart();
    assert.deepEqual(readConf().plugins[0].ipam?.ranges, [[{ subnet: rangeC }]]);
    assert.equal(readConf().plugins[0].bridge, `${bridge}-2`, 'both older bridges carry pods');
    // Back to B: the bridge whose pods have B takes new pods again, and the file is as before.
    await update(rangeB);
    assert.equal(fs.readFileSync(conflist(), 'utf8'), onDisk);
  });

  it('deletes the old bridge and its IPAM state once its last pod is removed', async () => {
    await removePod(podA.id);
    await until('the old bridge to go', () => ipv4Of(bridge) === undefined);
    assert.ok(!ipamFiles().includes(podA.ip), 'host-local released the old address');
    assert.ok(!execFileSync('iptables', ['-t', 'nat', '-S']).toString().includes(`${podA.ip}/32`), 'no masquerade rule left for it');
    assert.ok(await reaches(podB.ctr, gatewayOf(rangeB)));
    assert.deepEqual(ipv4Of(`${bridge}-1`), [`${gatewayOf(rangeB)}/24`]);
  });

  it('with no pod on the bridge, readdresses it under its name: new pods work on the new range', async () => {
    await removePod(podB.id);
    assert.deepEqual(ipv4Of(`${bridge}-1`), [`${gatewayOf(rangeB)}/24`], 'the current bridge stays while it is consistent');
    await update(rangeA);
    assert.equal(readConf().plugins[0].bridge, `${bridge}-1`);
    assert.equal(ipv4Of(`${bridge}-1`), undefined, 'deleted, for the plugin to make it again with the new gateway');
    const pod = await runPod();
    assert.ok(inRange(pod.ip, rangeA), pod.ip);
    assert.ok(await reaches(pod.ctr, gatewayOf(rangeA)));
    assert.deepEqual(ipv4Of(`${bridge}-1`), [`${gatewayOf(rangeA)}/24`]);
    await removePod(pod.id);
    assert.deepEqual(ipamFiles(), []);
  });

  it('runs every pod started while the range changes, each on a range whose gateway it reaches', async () => {
    const pods = Promise.all(Array.from({ length: 4 }, () => runPod()));
    await new Promise((r) => setTimeout(r, 100));
    await update(rangeC);
    for (const pod of await pods) {
      const range = [rangeA, rangeC].find((r) => inRange(pod.ip, r));
      assert.ok(range, pod.ip);
      assert.ok(await reaches(pod.ctr, gatewayOf(range!)), pod.ip);
      await removePod(pod.id);
    }
    currentBridge = readConf().plugins[0].bridge!;
    assert.deepEqual(ipv4Of(currentBridge) ?? [], ipv4Of(currentBridge)?.length ? [`${gatewayOf(rangeC)}/24`] : []);
    assert.deepEqual(bridges.filter((b) => b !== currentBridge && fs.existsSync(`/sys/class/net/${b}`)), [], 'the old range\'s bridge went with its pods');
  });

  it('at start-up deletes its bridge when no pod uses it and its address is not the gateway of the range (an older skiff left it so)', async () => {
    await skiffd.kill();
    if (!fs.existsSync(`/sys/class/net/${currentBridge}`)) execFileSync('ip', ['link', 'add', currentBridge, 'type', 'bridge']);
    execFileSync('ip', ['addr', 'flush', 'dev', currentBridge]);
    execFileSync('ip', ['addr', 'add', `${gatewayOf(rangeA)}/24`, 'dev', currentBridge]);
    await skiffd.restart();
    assert.equal(ipv4Of(currentBridge), undefined);
    const pod = await runPod();
    assert.ok(inRange(pod.ip, rangeC), pod.ip);
    assert.ok(await reaches(pod.ctr, gatewayOf(rangeC)));
    assert.deepEqual(ipv4Of(currentBridge), [`${gatewayOf(rangeC)}/24`]);
    await removePod(pod.id);
  });

  it("never rewrites an operator's config, even under skiff's file name: it records the CIDR and says so", async () => {
    await skiffd.kill();
    const operator = JSON.stringify({ cniVersion: '1.0.0', name: 'operator', plugins: [{ type: 'bridge', bridge: `${bridge}-9`, ipam: { type: 'host-local', ranges: [[{ subnet: rangeA }]], dataDir: ipamDir } }] });
    fs.writeFileSync(conflist(), operator);
    await skiffd.restart();
    await update(rangeB);
    assert.equal(fs.readFileSync(conflist(), 'utf8'), operator);
    assert.deepEqual(JSON.parse(fs.readFileSync(recordFile(), 'utf8')), { podCidr: rangeB });
    assert.match(skiffd.log(), /pod CIDR recorded; the CNI network config is not skiff's/);
  });

  it('leaves no veth, netns, mount or IPAM file once its pods are removed, and no bridge once its own is deleted', async () => {
    for (const b of bridges) assert.deepEqual(ports(b), [], `${b} has no ports`);
    assert.deepEqual(ipamFiles(), []);
    assert.ok(!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(skiffd.dir));
    // What stays is the bridge of the current range, as cni0 does for containerd.
    assert.deepEqual(bridges.filter((b) => b !== currentBridge && fs.existsSync(`/sys/class/net/${b}`)), []);
  });
});
