// CDI devices over the CRI (config.CDI_devices and the cdi.k8s.io/* annotations kubelet's
// device plugins set) and the OCI hooks they bring: spec files (JSON and YAML) in the spec
// dirs skiffd is given; a container gets the device node (its cgroup allowing it), env,
// mount, additional gid and hooks, each hook seeing the container's state on stdin. Bad
// input (an unknown device, a malformed name, a broken spec file, a failing or hanging
// hook) fails the create with a message naming it and leaves nothing behind. Under the
// skiff-userns handler the device node is bound from the host's and its mount id-mapped;
// a node the host lacks is refused, as no user namespace can make one.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import type { ServiceError } from '@grpc/grpc-js';
import { cgroupTree, mountPointsUnder, runTempDir } from '../fixtures/cleanup';
import { CriPod, CriPods } from '../fixtures/cri_pods';
import { USERNS_HANDLER } from '../fixtures/handler';
import { startTestNode, TestNode } from '../fixtures/node';

const HOOK_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

interface HookState {
  ociVersion: string;
  id: string;
  status: string;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

describe('CDI devices and OCI hooks (skiffd over gRPC)', function () {
  this.timeout(240_000);
  let node: TestNode;
  let cri: CriPods;
  let pod: CriPod;
  const base = runTempDir('cdi-');
  const lowDir = path.join(base, 'etc-cdi');
  const highDir = path.join(base, 'run-cdi');
  const hooksDir = path.join(base, 'hooks');
  const outDir = path.join(hooksDir, 'out');
  const dataDir = path.join(base, 'data');
  const hookScript = path.join(hooksDir, 'hook.sh');
  const failScript = path.join(hooksDir, 'fail.sh');

  /** The states the hooks of a kind wrote for a container. */
  const states = (kind: string, id: string): HookState[] =>
    fs
      .readdirSync(outDir)
      .filter((f) => f.startsWith(`${kind}.`))
      .map((f) => JSON.parse(fs.readFileSync(path.join(outDir, f), 'utf8')) as HookState)
      .filter((s) => s.id === id);
  const hook = (hookName: string, inContainer = false) => ({
    hookName,
    path: inContainer ? '/cdi-hooks/hook.sh' : hookScript,
    args: ['hook.sh', hookName, inContainer ? '/cdi-hooks/out' : outDir],
    env: HOOK_ENV,
    timeout: 30,
  });

  before(async () => {
    for (const d of [lowDir, highDir, outDir, dataDir]) fs.mkdirSync(d, { recursive: true });
    fs.chmodSync(outDir, 0o777);
    fs.writeFileSync(path.join(dataDir, 'file'), 'from the host\n');
    fs.writeFileSync(hookScript, '#!/bin/sh\n# $1: the kind of hook, $2: where its state goes\ncat > "$2/$1.$$.json"\n', { mode: 0o755 });
    fs.writeFileSync(failScript, '#!/bin/sh\necho "cdi hook refused: no widget on this node" >&2\nexit 1\n', { mode: 0o755 });
    // JSON, in the earlier (lower priority) dir.
    fs.writeFileSync(
      path.join(lowDir, 'skiff-test.json'),
      JSON.stringify({
        cdiVersion: '0.7.0',
        kind: 'skiff.test/dev',
        containerEdits: { env: ['SKIFF_CDI_SPEC=spec-wide'] },
        devices: [
          {
            name: 'null0',
            containerEdits: {
              env: ['SKIFF_CDI_DEV=null0'],
              deviceNodes: [{ path: '/dev/skiff-test0', hostPath: '/dev/null', permissions: 'rw' }],
              mounts: [
                { hostPath: dataDir, containerPath: '/cdi-data', options: ['ro', 'rbind'] },
                { hostPath: hooksDir, containerPath: '/cdi-hooks', options: ['rw', 'rbind'] },
              ],
              additionalGids: [4242, 0],
              hooks: [hook('createRuntime'), hook('createContainer'), hook('startContainer', true), hook('poststart'), hook('poststop')],
            },
          },
          { name: 'null1', containerEdits: { env: ['SKIFF_CDI_DEV=null1'], deviceNodes: [{ path: '/dev/skiff-test1', type: 'c', major: 1, minor: 3 }] } },
        ],
      }),
    );
    fs.writeFileSync(path.join(lowDir, 'prio.json'), JSON.stringify({ cdiVersion: '0.6.0', kind: 'skiff.test/prio', devices: [{ name: 'x', containerEdits: { env: ['PRIO=low'] } }] }));
    // YAML, in the later dir, which wins a device both define.
    fs.writeFileSync(
      path.join(highDir, 'prio.yaml'),
      ['cdiVersion: "0.6.0"', 'kind: skiff.test/prio', 'devices:', '  - name: x', '    containerEdits:', '      env: ["PRIO=high"]', ''].join('\n'),
    );
    fs.writeFileSync(
      path.join(highDir, 'hooks.yml'),
      [
        'cdiVersion: "0.6.0"',
        'kind: skiff.test/hooks',
        'devices:',
        '  - name: fail',
        '    containerEdits:',
        '      hooks:',
        `        - {hookName: createRuntime, path: ${failScript}}`,
        '  - name: hang',
        '    containerEdits:',
        '      hooks:',
        '        - {hookName: createContainer, path: /bin/sleep, args: [sleep, "600"], timeout: 1}',
        '  - name: startfail',
        '    containerEdits:',
        '      hooks:',
        '        - {hookName: startContainer, path: /bin/false}',
        '  - name: poststartfail',
        '    containerEdits:',
        '      hooks:',
        `        - {hookName: poststart, path: ${failScript}}`,
        '',
      ].join('\n'),
    );
    // Broken: a file that is not JSON, and one with a field CDI does not know.
    fs.writeFileSync(path.join(highDir, 'broken.json'), '{"cdiVersion": "0.6.0", "kind": "skiff.test/broken", "devices": [');
    fs.writeFileSync(path.join(lowDir, 'strict.json'), JSON.stringify({ cdiVersion: '0.6.0', kind: 'skiff.test/strict', devices: [{ name: 'a', containerEdits: { env: ['A=1'] }, extra: 1 }] }));
    node = await startTestNode(undefined, ['--cdi.spec_dirs', `${lowDir},${highDir}`]);
    cri = new CriPods(node.skiffd, { prefix: 'cdi', namespace: 'cdi', uidPrefix: 'cdi-uid-' });
    pod = await cri.runPod();
  });
  after(async () => {
    await node?.stop();
  });

  it('gives a container its CDI_devices: device node, env, mount, gid and hooks with the state on stdin', async () => {
    const id = await cri.createCtr(pod, 'gpu', { CDI_devices: [{ name: 'skiff.test/dev=null0' }] });
    const bundle = path.join(node.skiffd.state, 'containers', id);
    for (const kind of ['createRuntime', 'createContainer']) {
      const [s] = states(kind, id);
      assert.ok(s, `the ${kind} hook ran at create`);
      assert.equal(s.bundle, bundle);
      assert.equal(s.status, 'creating');
      assert.ok(s.pid && s.pid > 0, `${kind}: a pid`);
      assert.equal(s.annotations?.['io.kubernetes.cri.sandbox-id'], pod.id, `${kind}: the container's annotations`);
      assert.match(s.ociVersion, /^1\./);
    }
    assert.equal(states('startContainer', id).length, 0, 'startContainer waits for the start');
    await node.skiffd.client.runtime('StartContainer', { container_id: id });
    const [started] = states('startContainer', id);
    assert.equal(started?.status, 'created', 'startContainer ran in the container before its command');
    const [post] = states('poststart', id);
    assert.equal(post?.status, 'running');
    // Hooks in the runtime namespace see the host's pid of the container process; those in
    // the container's namespaces see the pid it has there.
    assert.equal(states('createRuntime', id)[0].pid, post.pid, 'createRuntime and poststart: the same host pid');
    assert.equal(states('createContainer', id)[0].pid, started.pid, 'createContainer and startContainer: the same pid in the container');
    assert.equal((await cri.exec(id, ['pidof', 'sleep'])).out.trim(), String(started.pid), "the pid is the container's command's, as the container sees it");

    const env = (await cri.exec(id, ['env'])).out;
    assert.match(env, /^SKIFF_CDI_SPEC=spec-wide$/m, 'the spec-wide env');
    assert.match(env, /^SKIFF_CDI_DEV=null0$/m, "the device's env");
    const ls = await cri.exec(id, ['ls', '-l', '/dev/skiff-test0']);
    assert.match(ls.out, /^c.*\s1,\s+3\s/, `a char device 1:3: ${ls.out}`);
    const rw = await cri.exec(id, ['sh', '-c', 'cat /dev/skiff-test0 && echo x > /dev/skiff-test0 && echo opened']);
    assert.equal(rw.out.trim(), 'opened', `the device cgroup lets it open the node: ${rw.err}`);
    assert.equal((await cri.exec(id, ['cat', '/cdi-data/file'])).out, 'from the host\n', 'the mount');
    assert.notEqual((await cri.exec(id, ['touch', '/cdi-data/new'])).code, 0, 'mounted read-only as asked');
    const groups = (await cri.exec(id, ['id', '-G'])).out.trim().split(/\s+/);
    assert.ok(groups.includes('4242'), `the additional gid: ${groups.join(' ')}`);

    await node.skiffd.client.runtime('StopContainer', { container_id: id, timeout: 0 });
    await node.skiffd.client.runtime('RemoveContainer', { container_id: id });
    const [stopped] = states('poststop', id);
    assert.equal(stopped?.status, 'stopped', 'poststop ran at the removal');
  });

  it('takes devices from cdi.k8s.io/ annotations; a later spec dir wins a device both define', async () => {
    if (USERNS_HANDLER) {
      // null1 is a node the host does not have, which a user namespace cannot make (mknod).
      const message = /CDI device "skiff\.test\/dev=null1" .*: device node \/dev\/skiff-test1: a container in a user namespace cannot make device nodes, and the host has no device at \/dev\/skiff-test1 to bind/;
      await refused({ annotations: { 'cdi.k8s.io/skiff-test_dev1': 'skiff.test/dev=null1,skiff.test/prio=x' } }, 9, message);
    }
    const devices = USERNS_HANDLER ? 'skiff.test/prio=x' : 'skiff.test/dev=null1,skiff.test/prio=x';
    const id = await cri.startCtr(pod, 'annotated', { annotations: { 'cdi.k8s.io/skiff-test_dev1': devices } });
    const env = (await cri.exec(id, ['env'])).out;
    assert.match(env, /^PRIO=high$/m, 'the YAML spec in the later dir');
    if (!USERNS_HANDLER) {
      assert.match(env, /^SKIFF_CDI_DEV=null1$/m);
      assert.match(env, /^SKIFF_CDI_SPEC=spec-wide$/m);
      const r = await cri.exec(id, ['sh', '-c', 'ls -l /dev/skiff-test1 && cat /dev/skiff-test1 && echo opened']);
      assert.match(r.out, /^c.*\s1,\s+3\s[\s\S]*opened/, `${r.out} ${r.err}`);
    }
    assert.equal(states('createRuntime', id).length, 0, "another device's hooks are not run");
    await node.skiffd.client.runtime('RemoveContainer', { container_id: id });
  });

  /** Containers, bundles, mounts and cgroups of the test skiffd, to compare before and after. */
  const snapshot = async () => ({
    containers: (await node.skiffd.client.runtime('ListContainers', {})).containers.map((c) => c.id).sort(),
    bundles: fs.readdirSync(path.join(node.skiffd.state, 'containers')).sort(),
    mounts: mountPointsUnder(node.skiffd.dir).sort(),
    cgroups: cgroupTree(node.skiffd.cgroupParent).sort(),
    records: fs.readdirSync(path.join(node.skiffd.root, 'metadata', 'containers')).sort(),
  });

  const refused = async (over: Parameters<CriPods['createCtr']>[2], code: number, message: RegExp) => {
    const before = await snapshot();
    let err: ServiceError | undefined;
    try {
      await cri.createCtr(pod, 'bad', over);
    } catch (e) {
      err = e as ServiceError;
    }
    assert.ok(err, 'the create fails');
    assert.equal(err.code, code, `code ${err.code}: ${err.details}`);
    assert.match(err.details, message);
    // Nothing new (other runs on the machine may take things away, never add to ours).
    const after = await snapshot();
    for (const key of Object.keys(after) as (keyof typeof after)[])
      assert.deepEqual(after[key].filter((x) => !before[key].includes(x)), [], `nothing is left: no new ${key}`);
  };

  it('refuses an unknown device or kind with NOT_FOUND, naming it', async () => {
    await refused({ CDI_devices: [{ name: 'skiff.test/dev=null9' }] }, 5, /"skiff\.test\/dev=null9".*not defined/);
    await refused({ annotations: { 'cdi.k8s.io/x': 'other.vendor/gpu=0' } }, 5, /"other\.vendor\/gpu=0".*no spec file .* defines the kind "other\.vendor\/gpu"/);
  });

  it('refuses a malformed device name with INVALID_ARGUMENT, naming the field', async () => {
    await refused({ CDI_devices: [{ name: 'gpu0' }] }, 3, /config\.CDI_devices\[0\]\.name: CDI device "gpu0": not a fully-qualified/);
    await refused({ annotations: { 'cdi.k8s.io/x': 'skiff.test/dev=null0,vendor/-bad=1' } }, 3, /config\.annotations\["cdi\.k8s\.io\/x"\]: CDI device "vendor\/-bad=1": class "-bad" must start with a letter/);
  });

  it('refuses a device whose spec file is broken, naming the file; the good files still serve', async () => {
    // A file of the device's kind that does not check out: FAILED_PRECONDITION.
    await refused({ CDI_devices: [{ name: 'skiff.test/strict=a' }] }, 9, /a spec file of their kind is broken: .*strict\.json: devices\[0\]: unknown field "extra"/);
    // A file that is not even JSON or YAML has no kind to tell: the device is not found,
    // and the message names the file as one that might have held it.
    await refused({ CDI_devices: [{ name: 'skiff.test/broken=a' }] }, 5, new RegExp(`did not load, which might: ${path.join(highDir, 'broken.json')}: not valid JSON or YAML`));
    // (The first two tests' devices resolved with both broken files in the dirs.)
  });

  it('fails the create with the output of a createRuntime hook that fails, leaving nothing', async () => {
    await refused({ CDI_devices: [{ name: 'skiff.test/hooks=fail' }] }, 9, /createRuntime hook \[0\] .*fail\.sh: exit status 1: stderr: cdi hook refused: no widget on this node/);
  });

  for (const [device, kind, message] of [
    ['startfail', 'startContainer', /startContainer hook \[0\] \/bin\/false: exit status 1/],
    ['poststartfail', 'poststart', /poststart hook \[0\] .*fail\.sh: exit status 1: stderr: cdi hook refused/],
  ] as const) {
    it(`fails the start when a ${kind} hook fails, and the container is stopped`, async () => {
      const id = await cri.createCtr(pod, device, { CDI_devices: [{ name: `skiff.test/hooks=${device}` }] });
      let err: ServiceError | undefined;
      await node.skiffd.client.runtime('StartContainer', { container_id: id }).catch((e: ServiceError) => (err = e));
      assert.equal(err?.code, 9, `FAILED_PRECONDITION: ${err?.details}`);
      assert.match(err.details, message);
      const deadline = Date.now() + 60_000;
      let state = -1;
      while (Date.now() < deadline) {
        state = (await node.skiffd.client.runtime('ContainerStatus', { container_id: id })).status!.state;
        if (state === 2) break; // CONTAINER_EXITED
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(state, 2, 'the container is exited, not left running');
      await node.skiffd.client.runtime('RemoveContainer', { container_id: id });
    });
  }

  it('fails the create with DEADLINE_EXCEEDED when a hook outlives its timeout, leaving nothing', async () => {
    await refused({ CDI_devices: [{ name: 'skiff.test/hooks=hang' }] }, 4, /createContainer hook \[0\] \/bin\/sleep: timed out after 1 s/);
  });
});
