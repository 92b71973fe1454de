// The `exec` suite: ExecSync and streaming exec (SPDY) round trips of `true`, and
// port-forward throughput over 64 MiB, for skiff and containerd+runc (the run's peers) in
// the same run, through the same client code.
import * as fs from 'fs';
import * as path from 'path';
import type { CriClient } from '../../src/cri/client';
import { busyboxLayer } from '../fixtures/images';
import { TestNetwork } from '../fixtures/network';
import { TestRegistry } from '../fixtures/registry';
import { TestSkiffd } from '../fixtures/skiffd';
import { spdyExec, spdyForward } from '../fixtures/spdy_client';
import type { BenchOptions, Suite } from './index';
import { startContainerdPeers } from './lifecycle';
import { PeerReport } from './peers';
import { fmt, printTable, round, summarize } from './stats';
import { Cleanups } from './util';

const DEFAULT_RUNS = 50;
const FORWARD_MIB = 64;
const log = (s: string) => console.log(s);

interface Target {
  name: 'skiff' | 'containerd';
  client: CriClient;
  container: string;
  pod: string;
  execSync: number[];
  execStream: number[];
  forwardMiBs: number[];
}

async function setUp(name: Target['name'], client: CriClient): Promise<Target> {
  await client.image('PullImage', { image: { image: 'docker.io/bench/busybox:1' } });
  const config = { metadata: { name: `exec-${name}`, namespace: 'bench', uid: `exec-${name}`, attempt: 0 }, linux: {} };
  const pod = (await client.runtime('RunPodSandbox', { config })).pod_sandbox_id;
  const cmd = `mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count=${FORWARD_MIB} 2>/dev/null && exec httpd -f -p 9000 -h /www`;
  const container = (
    await client.runtime('CreateContainer', {
      pod_sandbox_id: pod,
      config: { metadata: { name: 'srv', attempt: 0 }, image: { image: 'docker.io/bench/busybox:1' }, command: ['sh', '-c', cmd] },
      sandbox_config: config,
    })
  ).container_id;
  await client.runtime('StartContainer', { container_id: container });
  return { name, client, container, pod, execSync: [], execStream: [], forwardMiBs: [] };
}

async function once(t: Target): Promise<void> {
  let t0 = process.hrtime.bigint();
  const r = await t.client.runtime('ExecSync', { container_id: t.container, cmd: ['true'], timeout: 10 });
  if (r.exit_code !== 0) throw new Error(`${t.name}: ExecSync true exited ${r.exit_code}`);
  t.execSync.push(Number(process.hrtime.bigint() - t0) / 1e6);
  t0 = process.hrtime.bigint();
  const { url } = await t.client.runtime('Exec', { container_id: t.container, cmd: ['true'], stdout: true, stderr: true });
  const s = await spdyExec(url, ['v4.channel.k8s.io'], { stdout: true, stderr: true });
  if (s.status?.status !== 'Success') throw new Error(`${t.name}: streaming exec of true: ${JSON.stringify(s.status)}`);
  t.execStream.push(Number(process.hrtime.bigint() - t0) / 1e6);
}

async function forward(t: Target): Promise<void> {
  const get = Buffer.from('GET /big HTTP/1.0\r\n\r\n');
  for (let i = 0; i < 50; i++) {
    const { url } = await t.client.runtime('PortForward', { pod_sandbox_id: t.pod, port: [9000] });
    const t0 = process.hrtime.bigint();
    const r = await spdyForward(url, 9000, get);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.bytes >= FORWARD_MIB << 20) {
      t.forwardMiBs.push(r.bytes / (1 << 20) / s);
      return;
    }
    await new Promise((res) => setTimeout(res, 200)); // the server is still writing its file
  }
  throw new Error(`${t.name}: port forward never delivered ${FORWARD_MIB} MiB`);
}

async function runExecBench(opts: BenchOptions): Promise<void> {
  const runs = opts.runs ?? DEFAULT_RUNS;
  const work = fs.mkdtempSync('/tmp/skb-exec-');
  const cleanups = new Cleanups();
  cleanups.add('remove the work dir', () => fs.rmSync(work, { recursive: true, force: true }));
  try {
    const reg = await TestRegistry.start();
    cleanups.add('stop the registry', () => reg.stop());
    const layer = busyboxLayer(work);
    await reg.pushImage('bench/busybox', '1', [layer], undefined, { Cmd: ['sh'], Env: ['PATH=/bin'] });
    await reg.pushImage('bench/pause', '1', [layer], undefined, { Cmd: ['sleep', '2147483647'], Env: ['PATH=/bin'] });
    const skiffd = await TestSkiffd.start({ args: ['--network.write_default_config', 'false', '--log_level', 'info'] });
    const net = new TestNetwork(path.join(skiffd.dir, 'net.d'), path.join(skiffd.dir, 'ipam'));
    skiffd.mirror('docker.io', reg.host);
    cleanups.add('remove skiffd and its network', async () => {
      await skiffd.cleanup();
      net.remove();
    });
    const peers = new PeerReport();
    const [containerd] = await startContainerdPeers(opts.peers, [['containerd_runc', opts.peers.runc]], work, reg.host, cleanups, peers);
    if (opts.peers.crio.found) peers.notMeasured('crio', 'this suite drives containerd only; the lifecycle suite drives CRI-O');
    for (const line of peers.lines()) log(line);
    const targets = [await setUp('skiff', skiffd.client), ...(containerd ? [await setUp('containerd', containerd.client)] : [])];
    for (const t of targets) for (let i = 0; i < 3; i++) await once(t); // warm-up
    for (const t of targets) {
      t.execSync.length = 0;
      t.execStream.length = 0;
    }
    for (let i = 0; i < runs && !opts.signal.aborted; i++) for (const t of targets) await once(t);
    for (let i = 0; i < 3 && !opts.signal.aborted; i++) for (const t of targets) await forward(t);

    const rows: string[][] = [];
    const res: Record<string, Record<string, number | null>> = { execsync_ms: {}, exec_stream_ms: {}, portforward_mib_s: {} };
    for (const t of targets) {
      for (const [key, samples] of [['execsync_ms', t.execSync], ['exec_stream_ms', t.execStream], ['portforward_mib_s', t.forwardMiBs]] as const) {
        const sum = summarize(samples);
        res[key][t.name] = round(sum.median);
        rows.push([key, t.name, String(sum.n), fmt(sum.median), fmt(sum.p99)]);
      }
    }
    log('');
    printTable(['metric', 'subject', 'n', 'median', 'p99'], rows.sort((a, b) => a[0].localeCompare(b[0])));
    for (const key of Object.keys(res)) {
      const { skiff, containerd } = res[key];
      if (skiff !== null && containerd) log(`${key}: skiff/containerd ${fmt(skiff / containerd)}`);
    }
    if (!containerd) for (const key of Object.keys(res)) res[key].containerd = null;
    console.log(JSON.stringify({ suite: 'exec', peers: peers.json(), ...res }));
  } finally {
    await cleanups.run(log);
  }
}

export const execSuite: Suite = {
  name: 'exec',
  description: 'ExecSync and streaming exec latency, port-forward throughput: skiff vs containerd+runc',
  run: runExecBench,
};
