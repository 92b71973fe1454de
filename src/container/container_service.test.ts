// The container lifecycle against a fake shim, snapshotter and host: a failed create undoes
// every step it made, newest first, whichever step fails; stop sends the stop signal (again,
// while the container's init drops it) before SIGKILL; after a restart, or a lost shim, the
// records are brought in line with what the shim reports.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ContainerConfig, Mount, MountPropagation, NamespaceMode } from '../cri/gen/cri';
import { GrpcCode, grpcCode } from '../errors';
import { armFailpoints } from '../failpoints';
import type { ImageRecord } from '../image/image_service';
import { Logger } from '../log';
import { PodRecord, PodRegistry, shimDir } from '../sandbox/pod_registry';
import { FakeShim } from '../shim/fake_shim';
import { IntentJournal } from '../store/intents';
import { ContainerImages, ContainerService } from './container_service';
import { NO_LSM } from './lsm';

const POD = 'a'.repeat(64);
const PARENT = `/skiff-unit/skiff-pod-${POD}`;
const SIGTERM = 15;

/** Two images (busybox for rootfs, vol for image volumes), and rootfs mounts kept in
 * memory; an image volume's view is a real directory tree, gone when it is unmounted. */
class FakeImages implements ContainerImages {
  readonly failing = new Map<string, Error>();
  readonly mounted = new Set<string>();
  readonly views = new Set<string>();
  collected = 0;
  readonly image: ImageRecord = {
    id: `sha256:${'e'.repeat(64)}`,
    repoTags: ['busybox:latest'],
    repoDigests: [`busybox@sha256:${'d'.repeat(64)}`],
    size: 1,
    chainIds: [`sha256:${'1'.repeat(64)}`],
    blobs: [],
    config: { cmd: ['sh'], env: ['PATH=/bin'] },
    pulledAt: 0,
  };

  readonly volumeImage: ImageRecord = { ...this.image, id: `sha256:${'f'.repeat(64)}`, repoTags: ['vol:latest'], repoDigests: [], chainIds: [`sha256:${'2'.repeat(64)}`] };
  volumeImagePresent = true;

  constructor(private readonly calls: string[]) {}

  find(ref: string) {
    if (ref === 'busybox:latest' || ref === this.image.id) return this.image;
    return this.volumeImagePresent && (ref === 'vol:latest' || ref === this.volumeImage.id) ? this.volumeImage : undefined;
  }

  findExact(ref: string) {
    return ref === this.image.id ? this.image : undefined;
  }

  async collectGarbage() {
    this.collected++;
    return { blobs: 0, layers: 0 };
  }

  readonly snapshots = {
    mountRootfs: async (id: string, _chainIds: string[], target: string) => {
      this.calls.push(`mount rootfs ${id}`);
      const e = this.failing.get('mountRootfs');
      if (e) throw e;
      fs.mkdirSync(target, { recursive: true });
      this.mounted.add(id);
    },
    removeRootfs: async (id: string, _target: string) => {
      this.calls.push(`umount rootfs ${id}`);
      this.mounted.delete(id);
    },
    listWritableLayers: async () => [...this.mounted],
    mountView: async (_chainIds: string[], target: string) => {
      this.calls.push(`mount view ${path.basename(target)}`);
      const e = this.failing.get('mountView');
      if (e) throw e;
      fs.mkdirSync(path.join(target, 'data'), { recursive: true });
      fs.writeFileSync(path.join(target, 'data', 'f'), 'x');
      this.views.add(target);
    },
    unmountView: (target: string) => {
      if (!this.views.delete(target)) return;
      this.calls.push(`umount view ${path.basename(target)}`);
      fs.rmSync(target, { recursive: true });
      fs.mkdirSync(target);
    },
  };
}

/** A CRI mount of the vol image at /vol, as kubelet sends one. */
function imageMount(subPath = '', over: Partial<Mount> = {}): Mount {
  return {
    container_path: '/vol', host_path: '', readonly: true, selinux_relabel: false, propagation: MountPropagation.PROPAGATION_PRIVATE, uidMappings: [], gidMappings: [],
    recursive_read_only: false, image: { image: 'vol:latest', annotations: {}, user_specified_image: 'vol', runtime_handler: '', image_ref: '' }, image_sub_path: subPath, ...over,
  };
}

function containerConfig(name: string, over: Partial<ContainerConfig> = {}): ContainerConfig {
  return {
    metadata: { name, attempt: 0 },
    image: { image: 'busybox:latest', annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' },
    command: ['sleep', '1000'], args: [], working_dir: '', envs: [], mounts: [], devices: [], labels: {}, annotations: {}, log_path: `${name}/0.log`,
    stdin: false, stdin_once: false, tty: false, linux: null, windows: null, CDI_devices: [], stop_signal: 0,
    ...over,
  };
}

describe('ContainerService', () => {
  let dir: string;
  let calls: string[];
  let shim: FakeShim;
  let images: FakeImages;
  let drops: () => boolean;
  let pod: PodRecord;
  let started: boolean;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-containers-'));
    calls = [];
    shim = new FakeShim(calls);
    images = new FakeImages(calls);
    drops = () => false;
    started = false;
    const podDir = path.join(dir, 'state', 'pods', POD);
    fs.mkdirSync(shimDir({ dir: podDir }), { recursive: true });
    pod = {
      id: POD,
      config: { metadata: { name: 'web', namespace: 'ns', uid: 'u1', attempt: 0 }, hostname: 'web', log_directory: path.join(dir, 'logs'), dns_config: null, port_mappings: [], labels: {}, annotations: {}, linux: null, windows: null },
      runtimeHandler: '', createdAt: 1, state: 'ready', hostNetwork: false, pidMode: NamespaceMode.CONTAINER, ipcMode: NamespaceMode.POD,
      namespaces: { net: '/proc/4242/ns/net', ipc: '/proc/4242/ns/ipc', uts: '/proc/4242/ns/uts' }, infraPid: 4242, netnsPath: '', ips: [],
      cgroupParent: PARENT, ownsCgroup: true, dir: podDir, hostsPath: path.join(podDir, 'hosts'), resolvConfPath: path.join(podDir, 'resolv.conf'),
      hostnamePath: path.join(podDir, 'hostname'), shmPath: path.join(podDir, 'shm'),
    };
  });
  afterEach(() => {
    armFailpoints([]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A container service on the test's dirs (a start of skiffd): the pod's record is there
   * (the first time, it is made), and its shim answers unless `shimAlive` is false. */
  async function start(shimAlive = true) {
    const log = new Logger('error', {}, { write: () => true } as unknown as NodeJS.WritableStream, false);
    const journal = new IntentJournal(path.join(dir, 'root', 'metadata', 'intents'), () => {});
    await journal.init();
    const pods = new PodRegistry(path.join(dir, 'root'), log);
    await pods.loadPods();
    if (!started) await pods.save(pod);
    started = true;
    shim.removeAllListeners();
    if (shimAlive) await pods.attachShim(POD, shim.client);
    const host = { removeCgroupTree: async (rel: string) => void calls.push(`rm cgroup ${rel}`), initDropsSignal: async () => drops() };
    const svc = new ContainerService({ root: path.join(dir, 'root'), state: path.join(dir, 'state'), images, pods, host, log, minOomScoreAdj: -1000, lsm: NO_LSM, journal, cdiSpecDirs: [] });
    await svc.init();
    return { svc, pods, journal, bundles: () => fs.readdirSync(path.join(dir, 'state', 'containers')) };
  }

  const after = (call: string) => calls.slice(calls.findIndex((c) => c.startsWith(call)) + 1);

  it('creates a container: rootfs, config.json, the shim, a CREATED record; the name is held', async () => {
    const { svc, journal } = await start();
    const r = await svc.create(POD, containerConfig('app'));
    assert.equal(r.state, 'created');
    assert.equal(r.imageRef, images.image.repoDigests[0]);
    assert.equal(r.logPath, path.join(dir, 'logs', 'app', '0.log'));
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(r.bundle, 'config.json'), 'utf8')).process.args, ['sleep', '1000']);
    assert.deepEqual(calls.filter((c) => !c.startsWith('shim subscribe')), [`mount rootfs ${r.id}`, `shim create ${r.id}`]);
    assert.deepEqual(await journal.pending(), []);
    assert.deepEqual(svc.inPod(POD).map((c) => c.id), [r.id]);
    await assert.rejects(svc.create(POD, containerConfig('app')), (e) => grpcCode(e) === GrpcCode.ALREADY_EXISTS);
    await assert.rejects(svc.create('b'.repeat(64), containerConfig('other')), (e) => grpcCode(e) === GrpcCode.NOT_FOUND);
  });

  /** Each step made to fail, by the environment or by the config it returns. */
  const failures: [string, () => Partial<ContainerConfig> | void][] = [
    ['recording the intent', () => armFailpoints(['create_container.journaled=error'])],
    ['mounting the rootfs', () => void images.failing.set('mountRootfs', new Error('overlay: ENOSPC'))],
    ['after the rootfs', () => armFailpoints(['create_container.rootfs=error'])],
    ['mounting an image volume', () => (images.failing.set('mountView', new Error('overlay: ENOMEM')), { mounts: [imageMount(), imageMount('', { container_path: '/v2' })] })],
    ['resolving an image volume sub path', () => ({ mounts: [imageMount('data'), imageMount('missing', { container_path: '/v2' })] })],
    ['after the image volumes', () => (armFailpoints(['create_container.image_volumes=error']), { mounts: [imageMount('data')] })],
    ['building the spec', () => ({ working_dir: 'relative/dir' })],
    ['after the spec', () => armFailpoints(['create_container.spec=error'])],
    ['creating it in the shim', () => void shim.failing.set('create', new Error('clone3: EAGAIN'))],
    ['after the shim', () => armFailpoints(['create_container.shim=error'])],
  ];
  for (const [step, fail] of failures) {
    it(`undoes a create that fails at ${step}: nothing is left, the intent is dropped, the name is free`, async () => {
      const { svc, journal, bundles } = await start();
      await assert.rejects(svc.create(POD, containerConfig('app', fail() ?? {})));
      assert.deepEqual(svc.list(), []);
      assert.deepEqual(await journal.pending(), []);
      assert.deepEqual(bundles(), []);
      assert.deepEqual([...images.mounted], []);
      assert.deepEqual([...images.views], [], 'no image volume is left mounted');
      assert.deepEqual([...shim.containers.keys()], []);
      assert.deepEqual(svc.imagesInUse(), new Map(), 'the image is no longer held by the create');
      assert.deepEqual(svc.layersInUse(), new Set(), 'nor are the layers');
      armFailpoints([]);
      images.failing.clear();
      shim.failing.clear();
      assert.equal((await svc.create(POD, containerConfig('app'))).state, 'created');
    });
  }

  it('undoes newest first', async () => {
    const { svc } = await start();
    armFailpoints(['create_container.shim=error']);
    await assert.rejects(svc.create(POD, containerConfig('app')), /failpoint create_container\.shim/);
    assert.deepEqual(after('shim create').map((c) => c.replace(/[0-9a-f]{64}$/, 'ID')), ['shim delete ID', `rm cgroup ${PARENT}/ID`, 'umount rootfs ID']);
  });

  it('starts a created container; one that fails to start is recorded exited with StartError', async () => {
    const { svc, journal } = await start();
    const a = await svc.create(POD, containerConfig('a'));
    const begin = journal.begin.bind(journal);
    const journaled: string[] = [];
    journal.begin = ((op, id, plan) => (journaled.push(op), begin(op, id, plan))) as typeof journal.begin;
    await svc.start(a.id.slice(0, 8));
    assert.equal(svc.get(a.id)?.state, 'running');
    assert.deepEqual(journaled, [], 'a start makes nothing to undo: no intent');
    await assert.rejects(svc.start(a.id), (e) => grpcCode(e) === GrpcCode.FAILED_PRECONDITION);
    const b = await svc.create(POD, containerConfig('b'));
    shim.failing.set('start', new Error('exec: no such file'));
    await assert.rejects(svc.start(b.id), /no such file/);
    assert.deepEqual({ ...svc.get(b.id), finishedAt: 0 }, { ...b, state: 'exited', reason: 'StartError', message: 'exec: no such file', exitCode: 128, finishedAt: 0 });
    assert.deepEqual(await journal.pending(), []);
  });

  it('stops with the stop signal when the container handles it, else SIGKILL after the timeout', async () => {
    const { svc } = await start();
    const graceful = await svc.create(POD, containerConfig('graceful'));
    await svc.start(graceful.id);
    shim.exitsOn.add(SIGTERM);
    await svc.stop(graceful.id, 30);
    assert.equal(svc.get(graceful.id)?.state, 'exited');
    assert.equal(svc.get(graceful.id)?.exitCode, 128 + SIGTERM);
    shim.exitsOn.delete(SIGTERM);
    const stubborn = await svc.create(POD, containerConfig('stubborn'));
    await svc.start(stubborn.id);
    await svc.stop(stubborn.id, 1);
    assert.deepEqual(after(`shim start ${stubborn.id}`), [`shim kill ${stubborn.id} ${SIGTERM}`, `shim kill ${stubborn.id} 9`, `shim wait ${stubborn.id}`]);
    assert.equal(svc.get(stubborn.id)?.reason, 'Error');
    await svc.stop(stubborn.id, 1);
    await svc.stop('f'.repeat(64), 1);
    await assert.rejects(svc.stop('', 1), (e) => grpcCode(e) === GrpcCode.INVALID_ARGUMENT);
  });

  it('sends the stop signal again once the container init handles it, instead of waiting out the timeout', async () => {
    const { svc } = await start();
    const r = await svc.create(POD, containerConfig('shell'));
    await svc.start(r.id);
    let checks = 0;
    drops = () => {
      if (++checks < 3) return true;
      shim.exitsOn.add(SIGTERM); // the shell exec'd its program, which handles SIGTERM
      return false;
    };
    await svc.stop(r.id, 600);
    assert.deepEqual(after(`shim start ${r.id}`), [`shim kill ${r.id} ${SIGTERM}`, `shim kill ${r.id} ${SIGTERM}`]);
    assert.equal(svc.get(r.id)?.exitCode, 128 + SIGTERM);
  });

  it('after a restart, reconciles each record with the shim: running, exited while skiffd was down, exit file, gone', async () => {
    const first = await start();
    const ids: Record<string, string> = {};
    for (const name of ['running', 'exited', 'exitfile', 'gone', 'created']) {
      ids[name] = (await first.svc.create(POD, containerConfig(name))).id;
      if (name !== 'created') await first.svc.start(ids[name]);
    }
    shim.removeAllListeners('exit'); // skiffd is down: no one hears the exits
    shim.exit(ids.exited, 3);
    const e = shim.exit(ids.exitfile, 0);
    shim.containers.delete(ids.exitfile);
    fs.mkdirSync(path.join(shimDir(pod), 'exits'));
    fs.writeFileSync(path.join(shimDir(pod), 'exits', `${ids.exitfile}.json`), JSON.stringify(e));
    shim.containers.delete(ids.gone);
    const { svc } = await start();
    const state = (name: string) => {
      const r = svc.get(ids[name])!;
      return [r.state, r.exitCode, r.reason, r.message];
    };
    assert.deepEqual(state('running'), ['running', 0, '', '']);
    assert.deepEqual(state('created'), ['created', 0, '', '']);
    assert.deepEqual(state('exited'), ['exited', 3, 'Error', '']);
    assert.deepEqual(state('exitfile'), ['exited', 0, 'Completed', '']);
    assert.deepEqual(state('gone'), ['exited', 255, 'Unknown', 'container not found in its shim']);
    await assert.rejects(svc.create(POD, containerConfig('running')), (e) => grpcCode(e) === GrpcCode.ALREADY_EXISTS, 'names are held across the restart');
    shim.lose();
    for (const deadline = Date.now() + 10_000; svc.get(ids.running)?.state !== 'exited' && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(state('running'), ['exited', 255, 'Unknown', 'the pod shim is gone (host reboot or killed)']);
  });

  it('after a restart with the shim gone, or the pod record gone, reports the containers exited', async () => {
    const first = await start();
    const a = await first.svc.create(POD, containerConfig('a'));
    await first.svc.start(a.id);
    const { svc } = await start(false);
    assert.deepEqual([svc.get(a.id)?.state, svc.get(a.id)?.message], ['exited', 'the pod shim is gone (host reboot or killed)']);
    const b = await first.svc.create(POD, containerConfig('b'));
    await first.svc.start(b.id);
    await first.pods.delete(pod);
    const again = await start();
    assert.deepEqual([again.svc.get(b.id)?.state, again.svc.get(b.id)?.message], ['exited', 'pod sandbox record is gone']);
  });

  it('removes a container: stopped, deleted from the shim, its cgroup, rootfs, bundle and record; the name is free again', async () => {
    const { svc, journal, bundles } = await start();
    const r = await svc.create(POD, containerConfig('app'));
    await svc.start(r.id);
    const deleted: string[] = [];
    svc.onChange((c, x) => c === 'deleted' && deleted.push(x.id));
    await svc.remove(r.id);
    // The shim's delete removed the cgroup: skiffd walks the hierarchies only when the
    // shim could not (below).
    assert.deepEqual(after(`shim start ${r.id}`), [`shim kill ${r.id} 9`, `shim wait ${r.id}`, `shim delete ${r.id}`, `umount rootfs ${r.id}`]);
    assert.deepEqual(deleted, [r.id]);
    assert.deepEqual([svc.list(), bundles(), await journal.pending()], [[], [], []]);
    await svc.remove(r.id);
    await assert.rejects(svc.remove(''), (e) => grpcCode(e) === GrpcCode.INVALID_ARGUMENT);
    assert.equal((await svc.create(POD, containerConfig('app'))).state, 'created');
  });

  it("removes a container's cgroup itself when the shim's delete fails", async () => {
    const { svc } = await start();
    const r = await svc.create(POD, containerConfig('app'));
    shim.failing.set('delete', new Error('cgroup busy'));
    await svc.remove(r.id);
    assert.deepEqual(after(`shim delete ${r.id}`), [`rm cgroup ${PARENT}/${r.id}`, `umount rootfs ${r.id}`]);
    assert.deepEqual(svc.list(), []);
  });

  it("stops and removes all of a pod's containers for the pod's stop and removal", async () => {
    const { svc } = await start();
    const a = await svc.create(POD, containerConfig('a'));
    const b = await svc.create(POD, containerConfig('b'));
    await svc.start(a.id);
    await svc.stopAllInPod(POD);
    assert.deepEqual(svc.inPod(POD).map((c) => c.state), ['exited', 'exited']);
    await svc.removeAllInPod(POD);
    assert.deepEqual(svc.list(), []);
    assert.ok(!svc.get(b.id));
  });

  it('recovers an interrupted create by undoing it, and settles an interrupted start or removal', async () => {
    const { svc, journal, bundles } = await start();
    const id = 'c'.repeat(64);
    const bundle = path.join(dir, 'state', 'containers', id);
    await images.snapshots.mountRootfs(id, [], path.join(bundle, 'rootfs'));
    await images.snapshots.mountView([], path.join(bundle, 'image-volumes', '0'));
    await shim.create({ id, bundle });
    const create = await journal.begin('create_container', id, { podId: POD, bundle, cgroupParent: PARENT });
    assert.equal(await svc.recoverIntent(create), 'undone');
    assert.deepEqual([bundles(), [...images.mounted], [...images.views], [...shim.containers.keys()]], [[], [], [], []]);
    assert.ok(calls.includes(`rm cgroup ${PARENT}/${id}`));
    const r = await svc.create(POD, containerConfig('app'));
    assert.equal(await svc.recoverIntent(await journal.begin('start_container', r.id, { podId: POD })), 'undone', 'never started: still created');
    assert.equal(await svc.recoverIntent(await journal.begin('remove_container', r.id, { podId: POD })), 'finished');
    assert.equal(svc.get(r.id), undefined);
  });

  it('mounts an image volume beside the rootfs, binds it read-only, keeps its layers while the container exists, and unmounts it on removal', async () => {
    const { svc, bundles } = await start();
    const r = await svc.create(POD, containerConfig('app', { mounts: [imageMount(), imageMount('./data/', { container_path: '/sub' })] }));
    const target = (n: number) => path.join(r.bundle, 'image-volumes', String(n));
    assert.deepEqual(r.imageVolumes, [
      { mount: 0, imageId: images.volumeImage.id, chainIds: images.volumeImage.chainIds, target: target(0), source: target(0) },
      { mount: 1, imageId: images.volumeImage.id, chainIds: images.volumeImage.chainIds, target: target(1), source: path.join(target(1), 'data') },
    ]);
    const mounts = (JSON.parse(fs.readFileSync(path.join(r.bundle, 'config.json'), 'utf8')) as { mounts: { destination: string; source: string; options: string[] }[] }).mounts;
    assert.deepEqual(mounts.filter((m) => m.destination === '/vol' || m.destination === '/sub').map((m) => [m.destination, m.source, m.options]), [
      ['/vol', target(0), ['rbind', 'rprivate', 'ro']],
      ['/sub', path.join(target(1), 'data'), ['rbind', 'rprivate', 'ro']],
    ]);
    assert.ok(svc.layersInUse().has(images.volumeImage.chainIds[0]), 'the volume image layers are kept');
    assert.equal(svc.imagesInUse().has(images.volumeImage.id), false, 'the volume image itself may be removed, as containerd allows');
    // The record keeps what is mounted: a restart still knows.
    const again = await start();
    assert.deepEqual(again.svc.get(r.id)?.imageVolumes, r.imageVolumes);
    assert.ok(again.svc.layersInUse().has(images.volumeImage.chainIds[0]));
    images.volumeImagePresent = false;
    const collected = images.collected;
    await again.svc.remove(r.id);
    assert.deepEqual([...images.views], []);
    assert.deepEqual(bundles(), []);
    assert.equal(images.collected, collected + 1, 'the layers only this container kept are collected');
    assert.deepEqual(again.svc.layersInUse(), new Set());
  });

  it('refuses bad image mounts before making anything, naming the field', async () => {
    const { svc, bundles } = await start();
    const refused = async (mount: Mount, code: GrpcCode, message: RegExp) => {
      await assert.rejects(svc.create(POD, containerConfig('app', { mounts: [mount] })), (e: Error) => grpcCode(e) === code && message.test(e.message));
      assert.deepEqual([bundles(), calls.filter((c) => c.startsWith('mount')), svc.list()], [[], [], []]);
    };
    await refused(imageMount('/etc'), GrpcCode.INVALID_ARGUMENT, /^ImageVolumeMountFailed: config\.mounts\[0\]\.image_sub_path "\/etc" must be a path relative/);
    await refused(imageMount('data/../..'), GrpcCode.INVALID_ARGUMENT, /config\.mounts\[0\]\.image_sub_path "data\/\.\.\/\.\." must not contain "\.\."/);
    await refused(imageMount('', { host_path: '/tmp' }), GrpcCode.INVALID_ARGUMENT, /config\.mounts\[0\]\.host_path must be empty/);
    await refused(imageMount('', { readonly: false }), GrpcCode.INVALID_ARGUMENT, /config\.mounts\[0\]\.readonly must be true/);
    await refused(imageMount('', { image: { image: 'nope:1', annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' } }), GrpcCode.NOT_FOUND, /config\.mounts\[0\]\.image: image "nope:1" not found/);
    await refused({ ...imageMount('data'), image: null, host_path: '/tmp' }, GrpcCode.INVALID_ARGUMENT, /config\.mounts\[0\]\.image_sub_path "data" is set without an image/);
  });
});
