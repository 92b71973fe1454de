// CheckpointContainer and restore against a real skiffd with real CRIU: a counter kept in
// a shell's memory is checkpointed (and keeps running), the archive is checked entry by
// entry, the original is stopped, and a container restored from the archive in a new pod
// counts on from where it was, with its writable layer (a file it holds open, a file it
// deleted) back; the same with a tty; then every kind of bad input. The suite needs a CRIU
// that passes `criu check` on this kernel ($SKIFF_CRIU, /opt/criu/bin/criu, or criu on
// $PATH) and skips, saying why, where there is none. Under the skiff-userns handler it
// skips: skiff checkpoints no container in a user namespace (the refusal is checked here
// for a hostUsers: false pod, and in userns_handler for a pod of the handler).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tar from 'tar-stream';
import { probeCriu } from '../../src/checkpoint/criu';
import type { CriCallError } from '../../src/cri/client';
import type { ContainerConfig, PodSandboxConfig } from '../../src/cri/gen/cri';
import { ContainerState } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { skipUnderUserns } from '../fixtures/handler';
import { layerOf } from '../fixtures/images';
import { startTestNode, TestNode } from '../fixtures/node';

const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;
const FAILED_PRECONDITION = 9;
const INTERNAL = 13;

// The count lives only in the shell's memory; /tmp/held is in the writable layer and held
// open on fd 3; /etc/group, from the image, is deleted.
const COUNTER = 'echo kept > /tmp/held; exec 3</tmp/held; rm /etc/group; i=0; while true; do i=$((i+1)); echo "count $i"; sleep 0.2; done';

function criuCandidate(): string {
  if (process.env.SKIFF_CRIU) return process.env.SKIFF_CRIU;
  return fs.existsSync('/opt/criu/bin/criu') ? '/opt/criu/bin/criu' : '';
}

async function code(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as CriCallError).code, message: (e as Error).message };
  }
  assert.fail('the call succeeded');
}

/** Every entry of a tar: name -> its bytes (directories: empty). */
async function readTar(data: Buffer): Promise<Map<string, { type: string; data: Buffer }>> {
  const out = new Map<string, { type: string; data: Buffer }>();
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        out.set(header.name, { type: header.type, data: Buffer.concat(chunks) });
        next();
      });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  extract.end(data);
  await done;
  return out;
}

/** A tar of the entries (name -> bytes, or null for a directory), in order. */
async function writeTar(entries: [string, Buffer | null][]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const [name, data] of entries) pack.entry(data === null ? { name, type: 'directory' } : { name }, data ?? Buffer.alloc(0));
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

const counts = (log: string) => [...log.matchAll(/count (\d+)/g)].map((m) => Number(m[1]));

describe('CheckpointContainer and restore (skiffd over gRPC, real CRIU)', function () {
  this.timeout(600_000);
  let node: TestNode | undefined;
  let criu = '';
  let work: string;
  let logRoot: string;

  const client = () => node!.skiffd.client;
  const podConfig = (name: string): Reply<PodSandboxConfig> => ({
    metadata: { name, namespace: 'e2e', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: path.join(logRoot, name),
    linux: {},
  });
  const runPod = async (name: string) => {
    const config = podConfig(name);
    return { id: (await client().runtime('RunPodSandbox', { config })).pod_sandbox_id, config };
  };
  const create = async (pod: { id: string; config: Reply<PodSandboxConfig> }, name: string, over: Reply<ContainerConfig> = {}) =>
    (
      await client().runtime('CreateContainer', {
        pod_sandbox_id: pod.id,
        sandbox_config: pod.config,
        config: { metadata: { name, attempt: 0 }, image: { image: 'busybox' }, command: ['sh', '-c', COUNTER], log_path: `${name}.log`, ...over },
      })
    ).container_id;
  const state = async (id: string) => (await client().runtime('ContainerStatus', { container_id: id })).status!.state;
  const log = (pod: string, name: string) => {
    const f = path.join(logRoot, pod, `${name}.log`);
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
  };
  const waitFor = async (what: string, cond: () => boolean | Promise<boolean>, ms = 60_000) => {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const exec = async (id: string, cmd: string[]) => {
    const r = await client().runtime('ExecSync', { container_id: id, cmd, timeout: 30 });
    return { code: r.exit_code, out: Buffer.from(r.stdout).toString() };
  };

  before(async function () {
    skipUnderUserns(this, 'skiff does not checkpoint a container in a user namespace (FAILED_PRECONDITION; userns_handler checks the refusal)');
    const status = await probeCriu(criuCandidate());
    if (!status.available) {
      console.log(`    skipped: no CRIU that works here: ${status.reason}`);
      this.skip();
    }
    criu = status.path;
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-ckpt-'));
    // skiffd runs the real CRIU through a wrapper: while fail-dumps exists it asks CRIU to
    // dump a process that does not exist (how the suite makes CRIU fail), and while
    // hold-dumps exists a dump waits before it starts (a checkpoint held in flight).
    const wrapper = path.join(work, 'criu-wrapper');
    fs.writeFileSync(
      wrapper,
      `#!/bin/sh\nif [ "$1" = dump ]; then\n  while [ -e ${work}/hold-dumps ]; do sleep 0.1; done\n  [ -e ${work}/fail-dumps ] && exec ${criu} "$@" --tree=2147483000\nfi\nexec ${criu} "$@"\n`,
      { mode: 0o755 },
    );
    node = await startTestNode(undefined, ['--checkpoint.criu', wrapper]);
    logRoot = path.join(node.skiffd.dir, 'logs');
  });
  after(async () => {
    await node?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  let archive = '';
  let before_: number[] = [];
  let after_: number[] = [];

  it('checkpoints a running counter, which keeps running, into an archive laid out as CRI-O writes it', async () => {
    const pod = await runPod('ckpt-src');
    const id = await create(pod, 'counter');
    await client().runtime('StartContainer', { container_id: id });
    await waitFor('the counter to count', () => counts(log('ckpt-src', 'counter')).length >= 5);
    archive = path.join(work, 'counter.tar');
    before_ = counts(log('ckpt-src', 'counter'));
    await client().runtime('CheckpointContainer', { container_id: id, location: archive, timeout: 120 });
    after_ = counts(log('ckpt-src', 'counter'));
    // Left running: it counts on after the dump.
    assert.equal(await state(id), ContainerState.CONTAINER_RUNNING);
    const atCheckpoint = after_.length;
    await waitFor('the original to count on after its checkpoint', () => counts(log('ckpt-src', 'counter')).length > atCheckpoint + 2);
    // Nothing but the archive is left beside it.
    assert.deepEqual(fs.readdirSync(work).filter((n) => n !== 'criu-wrapper'), ['counter.tar']);
    assert.deepEqual(fs.readdirSync(path.join(node!.skiffd.dir, 'run', 'checkpoints')), []);

    const entries = await readTar(fs.readFileSync(archive));
    const names = [...entries.keys()];
    assert.equal(entries.get('checkpoint/')?.type, 'directory');
    for (const img of ['inventory.img', 'pstree.img', 'core-1.img', 'mm-1.img', 'pagemap-1.img', 'files.img', 'fs-1.img', 'cgroup.img'])
      assert.ok(entries.get(`checkpoint/${img}`)?.data.length, `checkpoint/${img} is in the archive: ${names.join(' ')}`);
    assert.ok(names.some((n) => /^checkpoint\/pages-\d+\.img$/.test(n)), 'the memory pages are in it');
    assert.match(entries.get('checkpoint/dump.log')!.data.toString(), /Dumping finished successfully/);
    const descriptors = JSON.parse(entries.get('checkpoint/descriptors.json')!.data.toString()) as string[];
    assert.equal(descriptors.length, 3);
    assert.match(descriptors[1], /^pipe:\[\d+\]$/, 'stdout is the shim pipe');
    const config = JSON.parse(entries.get('config.dump')!.data.toString());
    assert.equal(config.id, id);
    assert.equal(config.name, 'counter');
    assert.equal(config.runtime, 'skiff');
    assert.match(config.rootfsImageName, /busybox/);
    assert.match(config.rootfsImageRef, /^sha256:/);
    assert.ok(!Number.isNaN(Date.parse(config.createdTime)) && !Number.isNaN(Date.parse(config.checkpointedTime)));
    const spec = JSON.parse(entries.get('spec.dump')!.data.toString());
    assert.deepEqual(spec.process.args, ['sh', '-c', COUNTER]);
    assert.deepEqual(JSON.parse(entries.get('deleted.files')!.data.toString()), ['etc/group']);
    const diff = await readTar(entries.get('rootfs-diff.tar')!.data);
    assert.equal(diff.get('tmp/held')?.data.toString(), 'kept\n');
    assert.ok(!diff.has('etc/group'), 'a whiteout is not a file of the diff');
    assert.ok(entries.get('stats-dump')!.data.length > 0);
    assert.match(entries.get('container.log')!.data.toString(), /stdout F count 1\n/);

    await client().runtime('StopContainer', { container_id: id, timeout: 0 });
  });

  it('restores it in a new pod: it counts on from where it was, with its writable layer and open file', async () => {
    assert.ok(archive, 'the checkpoint test ran');
    const pod = await runPod('ckpt-dst');
    const id = await create(pod, 'restored', { image: { image: archive }, command: [] });
    assert.equal(await state(id), ContainerState.CONTAINER_CREATED);
    await client().runtime('StartContainer', { container_id: id });
    assert.equal(await state(id), ContainerState.CONTAINER_RUNNING);
    await waitFor('the restored counter to count', () => counts(log('ckpt-dst', 'restored')).length >= 3);
    const resumed = counts(log('ckpt-dst', 'restored'));
    // The first count it logs follows the one the original had reached when it was frozen:
    // no lower than its last before the call, no higher than its first after it (+1).
    assert.ok(resumed[0] > before_[before_.length - 1], `resumed at ${resumed[0]}, after ${before_[before_.length - 1]}`);
    assert.ok(resumed[0] <= after_[after_.length - 1] + 1, `resumed at ${resumed[0]}, the original had logged ${after_[after_.length - 1]} when the checkpoint returned`);
    assert.deepEqual(resumed.slice(0, 3), [resumed[0], resumed[0] + 1, resumed[0] + 2]);
    // The writable layer: the held file (open on fd 3 of the restored shell), the deletion.
    assert.deepEqual(await exec(id, ['readlink', '/proc/1/fd/3']), { code: 0, out: '/tmp/held\n' });
    assert.deepEqual(await exec(id, ['cat', '/tmp/held']), { code: 0, out: 'kept\n' });
    assert.equal((await exec(id, ['test', '-e', '/etc/group'])).code, 1);
    // In the new container's cgroup (CRIU ran there), with the new pod's hostname.
    assert.ok((await exec(id, ['cat', '/proc/1/cgroup'])).out.split('\n').filter(Boolean).every((l) => l.endsWith(`/${id}`)), 'the restored init is in its container\'s cgroups');
    // The new pod's UTS namespace, whose hostname stays the new pod's (CRIU writes back the
    // dumped one; the shim sets the spec's again, as for any container it creates).
    const infraUts = fs.readlinkSync(`/proc/${JSON.parse((await client().runtime('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true })).info.info).pid}/ns/uts`);
    assert.equal((await exec(id, ['readlink', '/proc/1/ns/uts'])).out, `${infraUts}\n`);
    assert.equal((await exec(id, ['hostname'])).out, 'ckpt-dst\n');
    // The shim reaps it like any other container: a stop ends it and reports the exit.
    await client().runtime('StopContainer', { container_id: id, timeout: 5 });
    assert.equal(await state(id), ContainerState.CONTAINER_EXITED);
  });

  it('restores from an image built from the archive (one layer, CRI-O\'s checkpoint annotation)', async () => {
    assert.ok(archive, 'the checkpoint test ran');
    // Built as buildah does it: the archive's files as the one layer, the annotation on the manifest.
    const files = fs.mkdtempSync(path.join(work, 'image-'));
    execFileSync('tar', ['-C', files, '-xf', archive]);
    const layer = layerOf(files);
    fs.rmSync(files, { recursive: true, force: true });
    const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [layer.diffId] } }));
    const reg = node!.reg;
    await reg.pushBlob('library/counter-checkpoint', config);
    await reg.pushBlob('library/counter-checkpoint', layer.data);
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: layer.mediaType, digest: sha(layer.data), size: layer.data.length }],
      annotations: { 'io.kubernetes.cri-o.annotations.checkpoint.name': 'counter' },
    };
    await reg.pushManifest('library/counter-checkpoint', 'v1', Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
    await client().image('PullImage', { image: { image: 'counter-checkpoint:v1' } });
    const pod = await runPod('ckpt-image');
    const id = await create(pod, 'from-image', { image: { image: 'counter-checkpoint:v1' }, command: [] });
    await client().runtime('StartContainer', { container_id: id });
    await waitFor('the counter restored from the image to count', () => counts(log('ckpt-image', 'from-image')).length >= 2);
    const resumed = counts(log('ckpt-image', 'from-image'));
    assert.ok(resumed[0] > before_[before_.length - 1] && resumed[0] <= after_[after_.length - 1] + 1, `resumed at ${resumed[0]}`);
    assert.deepEqual(await exec(id, ['cat', '/tmp/held']), { code: 0, out: 'kept\n' });
    await client().runtime('StopContainer', { container_id: id, timeout: 0 });
  });

  it('checkpoints and restores a container with a tty', async () => {
    const pod = await runPod('ckpt-tty');
    const id = await create(pod, 'tty', { tty: true });
    await client().runtime('StartContainer', { container_id: id });
    await waitFor('the tty counter to count', () => counts(log('ckpt-tty', 'tty')).length >= 3);
    const file = path.join(work, 'tty.tar');
    await client().runtime('CheckpointContainer', { container_id: id, location: file, timeout: 120 });
    const reached = counts(log('ckpt-tty', 'tty'));
    const descriptors = JSON.parse((await readTar(fs.readFileSync(file))).get('checkpoint/descriptors.json')!.data.toString()) as string[];
    assert.match(descriptors[1], /^tty\[[0-9a-f]+:[0-9a-f]+\]$/);
    await client().runtime('StopContainer', { container_id: id, timeout: 0 });
    const pod2 = await runPod('ckpt-tty2');
    // A restore must keep the tty setting.
    assert.equal((await code(create(pod2, 'no-tty', { image: { image: file } }))).code, INVALID_ARGUMENT);
    const restored = await create(pod2, 'tty', { image: { image: file }, tty: true });
    await client().runtime('StartContainer', { container_id: restored });
    await waitFor('the restored tty counter to count', () => counts(log('ckpt-tty2', 'tty')).length >= 2);
    const resumed = counts(log('ckpt-tty2', 'tty'));
    assert.ok(resumed[0] > reached[0] && resumed[1] === resumed[0] + 1, `resumed at ${resumed.slice(0, 2)}`);
    assert.equal((await exec(restored, ['sh', '-c', 'test -t 0 </proc/1/fd/1'])).code, 0, 'its stdout is a terminal');
    await client().runtime('StopContainer', { container_id: restored, timeout: 0 });
  });

  it('checkpoints and restores a container of a pod that shares its PID namespace', async () => {
    const shared = { security_context: { namespace_options: { network: 0, pid: 0, ipc: 0 } } };
    const pod = { id: '', config: { ...podConfig('ckpt-pidns'), linux: shared } };
    pod.id = (await client().runtime('RunPodSandbox', { config: pod.config })).pod_sandbox_id;
    const id = await create(pod, 'shared', { linux: shared });
    await client().runtime('StartContainer', { container_id: id });
    await waitFor('the counter to count', () => counts(log('ckpt-pidns', 'shared')).length >= 3);
    assert.notEqual((await exec(id, ['cat', '/proc/1/cmdline'])).out.split('\0')[0], 'sh', 'the pod infra is PID 1');
    const file = path.join(work, 'pidns.tar');
    await client().runtime('CheckpointContainer', { container_id: id, location: file, timeout: 120 });
    const reached = counts(log('ckpt-pidns', 'shared'));
    await client().runtime('StopContainer', { container_id: id, timeout: 0 });
    const pod2 = { id: '', config: { ...podConfig('ckpt-pidns2'), linux: shared } };
    pod2.id = (await client().runtime('RunPodSandbox', { config: pod2.config })).pod_sandbox_id;
    const restored = await create(pod2, 'shared', { image: { image: file }, linux: shared });
    await client().runtime('StartContainer', { container_id: restored });
    await waitFor('the restored counter to count', () => counts(log('ckpt-pidns2', 'shared')).length >= 2);
    assert.ok(counts(log('ckpt-pidns2', 'shared'))[0] > reached[0]);
    assert.notEqual((await exec(restored, ['cat', '/proc/1/cmdline'])).out.split('\0')[0], 'sh', 'restored into the new pod\'s PID namespace');
    await client().runtime('StopContainer', { container_id: restored, timeout: 0 });
  });

  it('restores a volume from the new config: the new source is mounted, and a config without it is refused', async () => {
    const [a, b] = ['vol-a', 'vol-b'].map((n) => {
      const d = path.join(work, n);
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'which'), `${n}\n`);
      return d;
    });
    const mount = (host: string) => ({ mounts: [{ container_path: '/data', host_path: host, readonly: false }] });
    const pod = await runPod('ckpt-vol');
    const id = await create(pod, 'vol', mount(a));
    await client().runtime('StartContainer', { container_id: id });
    await waitFor('the counter to count', () => counts(log('ckpt-vol', 'vol')).length >= 2);
    const file = path.join(work, 'vol.tar');
    await client().runtime('CheckpointContainer', { container_id: id, location: file, timeout: 120 });
    await client().runtime('StopContainer', { container_id: id, timeout: 0 });
    const pod2 = await runPod('ckpt-vol2');
    const refused = await code(create(pod2, 'vol', { image: { image: file } }));
    assert.equal(refused.code, INVALID_ARGUMENT);
    assert.match(refused.message, /mount at \/data, which the new config does not give/);
    const restored = await create(pod2, 'vol', { image: { image: file }, ...mount(b) });
    await client().runtime('StartContainer', { container_id: restored });
    await waitFor('the restored counter to count', () => counts(log('ckpt-vol2', 'vol')).length >= 2);
    assert.deepEqual(await exec(restored, ['cat', '/data/which']), { code: 0, out: 'vol-b\n' });
    await client().runtime('StopContainer', { container_id: restored, timeout: 0 });
  });

  it('the CLI checkpoints a container (left running) and restores it in a new pod, step by step', async () => {
    const cli = (args: string[]) => {
      const r = spawnSync(process.execPath, [path.resolve(__dirname, '../../src/cli/skiff.js'), '--socket', node!.skiffd.socket, ...args], { timeout: 300_000 });
      return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
    };
    const pod = await runPod('cli-src');
    const id = await create(pod, 'cli');
    await client().runtime('StartContainer', { container_id: id });
    await waitFor('the counter to count', () => counts(log('cli-src', 'cli')).length >= 3);
    const file = path.join(work, 'cli.tar');
    const ckpt = cli(['checkpoint', id.slice(0, 12), file]);
    assert.equal(ckpt.status, 0, ckpt.stderr);
    assert.match(ckpt.stderr, new RegExp(`checkpoint container ${id.slice(0, 13)} to ${file}`));
    assert.match(ckpt.stdout, /checkpointed .* \(still running\) into .*cli\.tar: [\d.]+ [kKMG]i?B in [\d.]+ s/);
    assert.equal(await state(id), ContainerState.CONTAINER_RUNNING);
    const reached = counts(log('cli-src', 'cli'));
    await client().runtime('StopContainer', { container_id: id, timeout: 0 });
    const logs = path.join(logRoot, 'cli-restores');
    const res = cli(['restore', '--pod-name', 'cli-dst', '--log-dir', logs, file, '-o', 'json']);
    assert.equal(res.status, 0, res.stderr);
    for (const step of ['read ', 'run pod e2e/cli-dst', 'create container cli from the archive', 'restore its processes (CRIU)']) assert.ok(res.stderr.includes(step), `step "${step}" shown: ${res.stderr}`);
    const out = JSON.parse(res.stdout) as { pod: string; container: string };
    assert.equal(await state(out.container), ContainerState.CONTAINER_RUNNING);
    const dir = fs.readdirSync(logs).find((d) => d.startsWith('e2e_cli-dst_'))!;
    const restoredLog = () => (fs.existsSync(path.join(logs, dir, 'cli', '0.log')) ? fs.readFileSync(path.join(logs, dir, 'cli', '0.log'), 'utf8') : '');
    await waitFor('the restored counter to count', () => counts(restoredLog()).length >= 2);
    assert.ok(counts(restoredLog())[0] > reached[0], 'it counts on from the checkpoint');
    await client().runtime('StopPodSandbox', { pod_sandbox_id: out.pod });
    await client().runtime('RemovePodSandbox', { pod_sandbox_id: out.pod });
  });

  it('refuses bad checkpoints: unknown or stopped container, relative or dangling location, a container of a user-namespaced pod, and a failing CRIU', async () => {
    const pod = await runPod('ckpt-bad');
    const id = await create(pod, 'victim');
    await client().runtime('StartContainer', { container_id: id });
    const unknown = await code(client().runtime('CheckpointContainer', { container_id: 'f'.repeat(64), location: path.join(work, 'x.tar'), timeout: 10 }));
    assert.equal(unknown.code, NOT_FOUND);
    const relative = await code(client().runtime('CheckpointContainer', { container_id: id, location: 'x.tar', timeout: 10 }));
    assert.equal(relative.code, INVALID_ARGUMENT);
    assert.match(relative.message, /absolute/);
    const dangling = await code(client().runtime('CheckpointContainer', { container_id: id, location: path.join(work, 'no-such-dir', 'x.tar'), timeout: 10 }));
    assert.equal(dangling.code, INVALID_ARGUMENT);
    assert.match(dangling.message, /does not exist/);
    const created = await create(pod, 'not-started');
    assert.equal((await code(client().runtime('CheckpointContainer', { container_id: created, location: path.join(work, 'x.tar'), timeout: 10 }))).code, FAILED_PRECONDITION);
    // A container in a user-namespaced pod: refused, saying so (where the kernel runs such pods).
    const kernel = JSON.parse((await client().runtime('Status', { verbose: true })).info.kernelFeatures ?? '{}') as { userNamespaces?: { supported: boolean } };
    if (kernel.userNamespaces?.supported) {
      const userns = { security_context: { namespace_options: { network: 0, pid: 1, ipc: 0, userns_options: { mode: 0, uids: [{ container_id: 0, host_id: 300000, length: 65536 }], gids: [{ container_id: 0, host_id: 300000, length: 65536 }] } } } };
      const upod = { id: '', config: { ...podConfig('ckpt-userns'), linux: userns } };
      upod.id = (await client().runtime('RunPodSandbox', { config: upod.config })).pod_sandbox_id;
      const uid = await create(upod, 'userns');
      await client().runtime('StartContainer', { container_id: uid });
      const refused = await code(client().runtime('CheckpointContainer', { container_id: uid, location: path.join(work, 'userns.tar'), timeout: 10 }));
      assert.equal(refused.code, FAILED_PRECONDITION);
      assert.match(refused.message, /user namespace/);
      assert.equal(await state(uid), ContainerState.CONTAINER_RUNNING);
    } else {
      console.log('    (no user-namespaced pods on this kernel: their refusal not exercised)');
    }

    // CRIU that fails (see the wrapper): the error carries CRIU's own log lines, the
    // container runs on, and nothing is left.
    await waitFor('the victim to count', () => counts(log('ckpt-bad', 'victim')).length >= 2);
    const location = path.join(work, 'failed.tar');
    fs.writeFileSync(path.join(work, 'fail-dumps'), '');
    let failed: { code: number; message: string };
    try {
      failed = await code(client().runtime('CheckpointContainer', { container_id: id, location, timeout: 60 }));
    } finally {
      fs.rmSync(path.join(work, 'fail-dumps'));
    }
    assert.equal(failed.code, INTERNAL);
    assert.match(failed.message, /criu dump failed.*Error \(/);
    assert.equal(await state(id), ContainerState.CONTAINER_RUNNING);
    const at = counts(log('ckpt-bad', 'victim')).length;
    await waitFor('the victim to count on', () => counts(log('ckpt-bad', 'victim')).length > at + 2);
    assert.ok(!fs.readdirSync(work).some((n) => n.includes('failed')), 'no archive, partial or whole');
    assert.deepEqual(fs.readdirSync(path.join(node!.skiffd.dir, 'run', 'checkpoints')), []);
  });

  it('a checkpoint cut short by a crash of skiffd leaves nothing once skiffd is back; the container runs on', async () => {
    const pod = await runPod('ckpt-crash');
    const id = await create(pod, 'crash');
    await client().runtime('StartContainer', { container_id: id });
    await waitFor('the counter to count', () => counts(log('ckpt-crash', 'crash')).length >= 2);
    const works = path.join(node!.skiffd.dir, 'run', 'checkpoints');
    const hold = path.join(work, 'hold-dumps');
    fs.writeFileSync(hold, '');
    let held: string;
    try {
      void client().runtime('CheckpointContainer', { container_id: id, location: path.join(work, 'crashed.tar'), timeout: 120 }).catch(() => undefined);
      await waitFor('the checkpoint to be under way', () => fs.existsSync(works) && fs.readdirSync(works).length === 1);
      held = path.join(works, fs.readdirSync(works)[0]);
      await node!.skiffd.kill();
    } finally {
      fs.rmSync(hold, { force: true });
    }
    // The shim's CRIU finishes its dump with no skiffd to hand it to.
    const dumpLog = path.join(held, 'checkpoint', 'dump.log');
    await waitFor('the orphaned dump to finish', () => fs.existsSync(dumpLog) && /Dumping finished successfully/.test(fs.readFileSync(dumpLog, 'utf8')));
    await node!.skiffd.restart();
    assert.deepEqual(fs.readdirSync(works), [], 'the work dir is gone');
    assert.ok(!fs.readdirSync(work).some((n) => n.includes('crashed')), 'no archive, partial or whole');
    assert.ok(!fs.readdirSync(path.join(node!.skiffd.root, 'metadata', 'intents')).some((n) => n.startsWith('checkpoint_container.')), 'the intent is settled');
    assert.equal(await state(id), ContainerState.CONTAINER_RUNNING);
    const at = counts(log('ckpt-crash', 'crash')).length;
    await waitFor('the container to count on', () => counts(log('ckpt-crash', 'crash')).length > at + 2);
  });

  it('refuses bad restores: a missing archive, a tampered rootfs diff, mounts the new config does not give', async () => {
    assert.ok(archive, 'the checkpoint test ran');
    const pod = await runPod('restore-bad');
    const bundles = () => fs.readdirSync(path.join(node!.skiffd.dir, 'run', 'containers')).sort();
    const bundlesBefore = bundles();
    const missing = await code(create(pod, 'missing', { image: { image: path.join(work, 'none.tar') } }));
    assert.equal(missing.code, NOT_FOUND);
    const original = await readTar(fs.readFileSync(archive));
    const rewrite = async (file: string, change: (name: string, data: Buffer) => Promise<Buffer> | Buffer) => {
      const entries: [string, Buffer | null][] = [];
      for (const [name, e] of original) entries.push([name, e.type === 'directory' ? null : await change(name, e.data)]);
      fs.writeFileSync(file, await writeTar(entries));
      return file;
    };
    const escape = await rewrite(path.join(work, 'escape.tar'), (name, data) => (name === 'rootfs-diff.tar' ? writeTar([['../../../../../../tmp/skiff-escaped', Buffer.from('x')]]) : data));
    const escaped = await code(create(pod, 'escape', { image: { image: escape } }));
    assert.equal(escaped.code, INVALID_ARGUMENT);
    assert.match(escaped.message, /leaves|\.\./);
    assert.ok(!fs.existsSync('/tmp/skiff-escaped'));
    const mounts = await rewrite(path.join(work, 'mounts.tar'), (name, data) => {
      if (name !== 'spec.dump') return data;
      const spec = JSON.parse(data.toString());
      spec.mounts.push({ destination: '/data', type: 'bind', source: '/etc', options: ['rbind', 'ro'] });
      return Buffer.from(JSON.stringify(spec));
    });
    const unmounted = await code(create(pod, 'mounts', { image: { image: mounts } }));
    assert.equal(unmounted.code, INVALID_ARGUMENT);
    assert.match(unmounted.message, /mount at \/data/);
    // Nothing was made for the refused restores.
    const left = await client().runtime('ListContainers', { filter: { pod_sandbox_id: pod.id } });
    assert.deepEqual(left.containers, []);
    assert.deepEqual(bundles(), bundlesBefore);
  });
});
