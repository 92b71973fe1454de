import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FailedPrecondition, InvalidArgument, NotFound } from '../errors';
import type { Spec } from '../oci/runtime_spec';
import { CdiEditSet, parseCdiSpec, parseQualifiedName, requestedCdiDevices, resolveCdiDevices, scanCdiSpecDirs } from './cdi';
import { applyCdiEdits, CdiHostNode } from './cdi_edits';

const spec = (o: object) => JSON.stringify({ cdiVersion: '0.6.0', kind: 'vendor.com/gpu', devices: [{ name: '0', containerEdits: { env: ['A=1'] } }], ...o });
const bad = (o: object, want: RegExp) => assert.throws(() => parseCdiSpec(spec(o), '/x.json', 0), want);

describe('CDI device names', () => {
  it('takes vendor/class=name as CDI parses it', () => {
    assert.deepEqual(parseQualifiedName('nvidia.com/gpu=0'), { vendor: 'nvidia.com', class: 'gpu', name: '0' });
    assert.deepEqual(parseQualifiedName('a/b.c_d-e=GPU-1:2.x'), { vendor: 'a', class: 'b.c_d-e', name: 'GPU-1:2.x' });
    for (const n of ['gpu0', '/dev/gpu=0', 'vendor.com/gpu=', '=x', 'vendor.com=0', '1vendor/gpu=0', 'vendor/gpu-=0', 'vendor/gpu=-0', 'vendor/gpu=a b'])
      assert.ok('error' in parseQualifiedName(n), n);
  });

  it('collects CDI_devices, then the cdi.k8s.io/ annotations, each once; a bad one names its field', () => {
    const names = requestedCdiDevices({
      CDI_devices: [{ name: 'v.com/a=1' }, { name: 'v.com/a=2' }],
      annotations: { 'cdi.k8s.io/b': 'v.com/a=2,v.com/b=3', 'other/x': 'not=a,device', 'cdi.k8s.io/a': 'v.com/c=4' },
    });
    assert.deepEqual(names, ['v.com/a=1', 'v.com/a=2', 'v.com/c=4', 'v.com/b=3']);
    assert.throws(() => requestedCdiDevices({ CDI_devices: [{ name: 'x' }], annotations: {} }), (e: Error) => e instanceof InvalidArgument && /config\.CDI_devices\[0\]\.name/.test(e.message));
    assert.throws(() => requestedCdiDevices({ CDI_devices: [], annotations: { 'cdi.k8s.io/k': 'v.com/a=1,' } }), /config\.annotations\["cdi\.k8s\.io\/k"\]: CDI device ""/);
  });
});

describe('CDI spec files', () => {
  it('parses JSON and YAML, every edit kind', () => {
    const yaml = [
      'cdiVersion: "1.1.0"',
      'kind: vendor.com/gpu',
      'containerEdits:',
      '  env: [SPEC=1]',
      'devices:',
      '  - name: gpu0',
      '    annotations: {a: b}',
      '    containerEdits:',
      '      deviceNodes: [{path: /dev/gpu0, hostPath: /dev/nvidia0, type: c, major: 195, minor: 0, fileMode: 0o666, permissions: rw, uid: 1, gid: 2}]',
      '      mounts: [{hostPath: /usr/lib/x, containerPath: /usr/lib/x, type: bind, options: [ro, bind]}]',
      '      hooks: [{hookName: createContainer, path: /usr/bin/hook, args: [hook, x], env: [A=b], timeout: 5}]',
      '      additionalGids: [5]',
      '      intelRdt: {closID: c1, schemata: [x]}',
      '      netDevices: [{hostInterfaceName: eth1, name: net1}]',
    ].join('\n');
    const s = parseCdiSpec(yaml, '/etc/cdi/x.yaml', 1);
    assert.equal(s.vendor, 'vendor.com');
    assert.equal(s.class, 'gpu');
    assert.deepEqual(s.edits, { env: ['SPEC=1'] });
    const d = s.devices.get('gpu0')!;
    assert.deepEqual(d.deviceNodes, [{ path: '/dev/gpu0', hostPath: '/dev/nvidia0', type: 'c', major: 195, minor: 0, fileMode: 0o666, permissions: 'rw', uid: 1, gid: 2 }]);
    assert.deepEqual(d.hooks, [{ hookName: 'createContainer', path: '/usr/bin/hook', args: ['hook', 'x'], env: ['A=b'], timeout: 5 }]);
    assert.deepEqual(d.additionalGids, [5]);
    assert.equal(parseCdiSpec(spec({ cdiVersion: 'v0.5.0' }), '/x.json', 0).devices.size, 1, 'a leading v is allowed');
  });

  it("refuses what CDI's registry refuses, naming the field", () => {
    bad({ cdiVersion: '0.9.0' }, /cdiVersion: "0.9.0" is not a CDI version/);
    bad({ kind: 'gpu' }, /kind: "gpu" is not vendor\/class/);
    bad({ kind: 'vendor.com/-gpu' }, /class "-gpu" must start with a letter/);
    bad({ extra: 1 }, /spec: unknown field "extra"/);
    bad({ devices: [] }, /devices: at least one device/);
    bad({ devices: [{ name: 'a', containerEdits: {} }] }, /devices\[0\]\.containerEdits: device "a" has no container edits/);
    bad({ devices: [{ name: 'a', containerEdits: { env: ['A=1'] } }, { name: 'a', containerEdits: { env: ['A=1'] } }] }, /devices\[1\]\.name: device "a" is defined twice/);
    bad({ devices: [{ name: 'a', containerEdits: { env: ['=1'] } }] }, /env\[0\]: "=1" is not NAME=value/);
    bad({ devices: [{ name: 'a', containerEdits: { deviceNodes: [{ path: '/dev/x', type: 'x' }] } }] }, /deviceNodes\[0\]\.type/);
    bad({ devices: [{ name: 'a', containerEdits: { deviceNodes: [{ path: '/dev/x', permissions: 'rwx' }] } }] }, /deviceNodes\[0\]\.permissions/);
    bad({ devices: [{ name: 'a', containerEdits: { hooks: [{ hookName: 'preStart', path: '/x' }] } }] }, /hooks\[0\]\.hookName: "preStart"/);
    bad({ devices: [{ name: 'a', containerEdits: { hooks: [{ hookName: 'poststop', path: 'x' }] } }] }, /hooks\[0\]\.path: "x" must be an absolute path/);
    bad({ devices: [{ name: 'a', containerEdits: { hooks: [{ hookName: 'poststop', path: '/x', timeout: 0 }] } }] }, /hooks\[0\]\.timeout/);
    bad({ devices: [{ name: 'a', containerEdits: { mounts: [{ hostPath: '/a' }] } }] }, /mounts\[0\]\.containerPath: required/);
    bad({ devices: [{ name: 'a', containerEdits: { additionalGids: [-1] } }] }, /additionalGids\[0\]/);
    bad({ devices: [{ name: 'a', containerEdits: { intelRdt: { closID: '../x' } } }] }, /intelRdt\.closID/);
    // Fields newer than the version the file states.
    bad({ cdiVersion: '0.6.0', devices: [{ name: 'a', containerEdits: { additionalGids: [5] } }] }, /uses fields of CDI 0\.7\.0 but says 0\.6\.0/);
    bad({ cdiVersion: '0.4.0', devices: [{ name: 'a', containerEdits: { deviceNodes: [{ path: '/dev/a', hostPath: '/dev/b' }] } }] }, /CDI 0\.5\.0/);
    assert.throws(() => parseCdiSpec('{"cdiVersion": ', '/x.json', 0), /not valid JSON or YAML/);
  });
});

describe('the CDI spec dirs', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-cdi-unit-'));
    for (const d of ['low', 'high']) fs.mkdirSync(path.join(dir, d));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (rel: string, o: object | string) => fs.writeFileSync(path.join(dir, rel), typeof o === 'string' ? o : spec(o));
  const dirs = () => [path.join(dir, 'low'), path.join(dir, 'high'), path.join(dir, 'missing')];

  it('later dirs win; a conflict at one priority drops the device; broken files are recorded and skipped', async () => {
    write('low/a.json', { devices: [{ name: '0', containerEdits: { env: ['P=low'] } }, { name: '1', containerEdits: { env: ['P=1'] } }] });
    write('high/b.yaml', { devices: [{ name: '0', containerEdits: { env: ['P=high'] } }] });
    write('high/c.yml', { devices: [{ name: '1', containerEdits: { env: ['P=c'] } }, { name: '2', containerEdits: { env: ['P=c'] } }] });
    write('high/d.json', { devices: [{ name: '2', containerEdits: { env: ['P=d'] } }] });
    write('high/broken.json', '{');
    write('high/notes.txt', 'not a spec');
    const scan = await scanCdiSpecDirs(dirs());
    assert.deepEqual(scan.devices.get('vendor.com/gpu=0')!.devices.get('0'), { env: ['P=high'] });
    assert.deepEqual(scan.devices.get('vendor.com/gpu=1')!.devices.get('1'), { env: ['P=c'] });
    assert.equal(scan.devices.has('vendor.com/gpu=2'), false, 'two files of one dir define it: neither wins');
    assert.match(scan.errors.get(path.join(dir, 'high/d.json'))!.join(), /also defined in .*c\.yml/);
    assert.match(scan.errors.get(path.join(dir, 'high/broken.json'))!.join(), /not valid JSON or YAML/);
    assert.equal([...scan.errors.keys()].some((f) => f.endsWith('notes.txt')), false);

    const sets = await resolveCdiDevices(dirs(), ['vendor.com/gpu=1', 'vendor.com/gpu=0']);
    assert.deepEqual(
      sets.map((s) => [s.source, path.basename(s.file)]),
      [['vendor.com/gpu=1', 'c.yml'], ['vendor.com/gpu=0', 'b.yaml']],
    );
    await assert.rejects(resolveCdiDevices(dirs(), ['vendor.com/gpu=2']), (e: Error) => e instanceof FailedPrecondition && /"vendor\.com\/gpu=2" is defined in both .*c\.yml and .*d\.json/.test(e.message));
    await assert.rejects(resolveCdiDevices(dirs(), ['vendor.com/gpu=9']), (e: Error) => e instanceof NotFound && /"vendor\.com\/gpu=9": not defined.*did not load, which might: .*broken\.json/.test(e.message));
    await assert.rejects(resolveCdiDevices(dirs(), ['other.com/x=1']), (e: Error) => e instanceof NotFound && /defines the kind "other\.com\/x"/.test(e.message));
    assert.deepEqual(await resolveCdiDevices(dirs(), []), [], 'no devices: the dirs are not read');
  });
});

describe('CDI edits applied to an OCI spec', () => {
  const base = (): Spec => ({
    ociVersion: '1.1.0',
    process: { user: { uid: 1000, gid: 1000, additionalGids: [1000] }, args: ['sh'], env: ['PATH=/bin', 'A=old'], cwd: '/' },
    root: { path: '/r' },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }, { destination: '/a/b/c', type: 'bind', source: '/x', options: ['rbind'] }, { destination: '/data', type: 'bind', source: '/old', options: ['rbind'] }],
    linux: { namespaces: [], devices: [], resources: { devices: [{ allow: false, access: 'rwm' }] } },
  });
  const nodes = new Map<string, CdiHostNode>([
    ['/dev/nvidia0', { type: 'c', major: 195, minor: 0, mode: 0o666 }],
    ['/dev/sda', { type: 'b', major: 8, minor: 0, mode: 0o660 }],
  ]);
  const set = (edits: CdiEditSet['edits'], source = 'vendor.com/gpu=0'): CdiEditSet => ({ source, file: '/etc/cdi/v.json', edits });

  it('sets env, device nodes with their cgroup rules, mounts, hooks and gids', () => {
    const s = base();
    applyCdiEdits(
      s,
      [
        set({ env: ['A=new', 'B=1'] }, 'vendor.com/gpu'),
        set({
          deviceNodes: [{ path: '/dev/gpu0', hostPath: '/dev/nvidia0' }, { path: '/dev/disk', hostPath: '/dev/sda', permissions: 'r', uid: 0 }, { path: '/dev/fixed', type: 'c', major: 1, minor: 3, permissions: 'none' }],
          mounts: [{ hostPath: '/new', containerPath: '/data', options: ['ro'] }, { hostPath: '/lib', containerPath: '/l', type: 'bind' }],
          hooks: [{ hookName: 'createRuntime', path: '/h', args: ['h', '1'], timeout: 3 }, { hookName: 'prestart', path: '/p' }],
          additionalGids: [0, 5, 1000],
        }),
      ],
      (p) => nodes.get(p),
    );
    assert.deepEqual(s.process.env, ['PATH=/bin', 'A=new', 'B=1']);
    assert.deepEqual(s.linux.devices, [
      { path: '/dev/gpu0', type: 'c', major: 195, minor: 0, fileMode: 0o666, uid: 1000, gid: 1000 },
      { path: '/dev/disk', type: 'b', major: 8, minor: 0, fileMode: 0o660, uid: 0, gid: 1000 },
      { path: '/dev/fixed', type: 'c', major: 1, minor: 3, uid: 1000, gid: 1000 },
    ]);
    assert.deepEqual(s.linux.resources!.devices, [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 195, minor: 0, access: 'rwm' },
      { allow: true, type: 'b', major: 8, minor: 0, access: 'r' },
    ]);
    assert.deepEqual(
      s.mounts.map((m) => [m.destination, m.source, m.options]),
      [['/proc', 'proc', undefined], ['/data', '/new', ['ro', 'rbind']], ['/l', '/lib', []], ['/a/b/c', '/x', ['rbind']]],
      'a CDI mount replaces one at its destination; parents before children',
    );
    assert.deepEqual(s.hooks, { createRuntime: [{ path: '/h', args: ['h', '1'], timeout: 3 }], prestart: [{ path: '/p' }] });
    assert.deepEqual(s.process.user.additionalGids, [1000, 5]);
  });

  it('refuses a missing host node, a type that differs from the host, and edits skiff cannot make', () => {
    const fails = (edits: CdiEditSet['edits'], want: RegExp) =>
      assert.throws(() => applyCdiEdits(base(), [set(edits)], (p) => nodes.get(p)), (e: Error) => e instanceof FailedPrecondition && want.test(e.message));
    fails({ deviceNodes: [{ path: '/dev/none' }] }, /CDI device "vendor\.com\/gpu=0" \(\/etc\/cdi\/v\.json\): device node \/dev\/none: host device \/dev\/none does not exist/);
    fails({ deviceNodes: [{ path: '/dev/x', hostPath: '/dev/sda', type: 'c' }] }, /type "c" but the host's \/dev\/sda is "b"/);
    fails({ intelRdt: { closID: 'x' } }, /intelRdt/);
    fails({ netDevices: [{ hostInterfaceName: 'eth1', name: 'net1' }] }, /netDevices/);
  });

  it("in a user namespace, binds a node from the host's path, refuses one the host lacks, and id-maps mounts when asked", () => {
    const userns = (): Spec => {
      const s = base();
      s.linux.namespaces.push({ type: 'user' });
      return s;
    };
    const map = [{ containerID: 0, hostID: 1 << 30, size: 65536 }];
    const s = userns();
    applyCdiEdits(
      s,
      [set({ deviceNodes: [{ path: '/dev/gpu0', hostPath: '/dev/nvidia0' }, { path: '/dev/sda', permissions: 'r' }, { path: '/dev/pipe', type: 'p' }], mounts: [{ hostPath: '/lib', containerPath: '/l' }, { hostPath: 'tmpfs', containerPath: '/t', type: 'tmpfs' }] })],
      (p) => nodes.get(p),
      { uidMappings: map, gidMappings: map },
    );
    assert.deepEqual(s.linux.devices, [{ path: '/dev/sda', type: 'b', major: 8, minor: 0, fileMode: 0o660, uid: 1000, gid: 1000 }, { path: '/dev/pipe', type: 'p', major: 0, minor: 0, uid: 1000, gid: 1000 }], 'a node at its host path stays a device (the shim binds it), a fifo is made');
    assert.deepEqual(s.linux.resources!.devices, [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 195, minor: 0, access: 'rwm' }, { allow: true, type: 'b', major: 8, minor: 0, access: 'r' }]);
    assert.deepEqual(s.mounts.find((m) => m.destination === '/dev/gpu0'), { destination: '/dev/gpu0', type: 'bind', source: '/dev/nvidia0', options: ['bind', 'rprivate', 'rw'] });
    assert.deepEqual(s.mounts.find((m) => m.destination === '/l'), { destination: '/l', source: '/lib', options: ['rbind'], uidMappings: map, gidMappings: map });
    assert.equal(s.mounts.find((m) => m.destination === '/t')?.uidMappings, undefined, 'only binds are id-mapped');

    const fails = (edits: CdiEditSet['edits'], want: RegExp) =>
      assert.throws(() => applyCdiEdits(userns(), [set(edits)], (p) => nodes.get(p)), (e: Error) => e instanceof FailedPrecondition && want.test(e.message));
    fails({ deviceNodes: [{ path: '/dev/made', type: 'c', major: 1, minor: 3 }] }, /device node \/dev\/made: a container in a user namespace cannot make device nodes, and the host has no device at \/dev\/made to bind/);
    fails({ deviceNodes: [{ path: '/dev/x', hostPath: '/dev/nvidia0', type: 'c', major: 195, minor: 1 }] }, /c 195:1 differs from the host's \/dev\/nvidia0 \(195:0\)/);
  });
});
