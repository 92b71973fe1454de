// The benchmark's peer flags, the version strings of containerd, runc, crun and CRI-O, the
// lookup on $PATH (with stand-in binaries that print what the real ones print), and the
// containerd config written for 1.6 and for 2.x.
import * as assert from 'assert';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { parse } from 'smol-toml';
import { containerdConfig, findOnPath, parseContainerdVersion } from '../fixtures/containerd';
import { criVersionText, listenerPid, parseOciRuntimeVersion, parsePeerArgs, PeerReport, resolvePeers } from './peers';

const DEBIAN_CONTAINERD = 'containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n';
const CONTAINERD_2 = 'containerd github.com/containerd/containerd/v2 v2.1.5 fcd43222d6b07379a4be9786bda52438f0dd16a1\n';
const RUNC = 'runc version 1.3.6\ncommit: v1.3.6-0-g491b69bab\nspec: 1.2.1\ngo: go1.23.5\nlibseccomp: 2.5.4\n';
const CRUN = 'crun version 1.8.1\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n';

describe('bench peers: flags', () => {
  it('takes each peer flag, in both spellings, and leaves suites and --runs to the caller', () => {
    const r = parsePeerArgs(['lifecycle', '--containerd', '/opt/containerd/bin/containerd', '--runs', '2', '--runc=/opt/runc/bin/runc', '--crun', 'none', '--crio-socket', '/run/crio/crio.sock', 'stats']);
    assert.deepStrictEqual(r, {
      flags: { containerd: '/opt/containerd/bin/containerd', runc: '/opt/runc/bin/runc', crun: 'none', crioSocket: '/run/crio/crio.sock' },
      rest: ['lifecycle', '--runs', '2', 'stats'],
    });
  });

  it('leaves every peer to $PATH when no flag names one', () => {
    assert.deepStrictEqual(parsePeerArgs(['exec', '--runs=3']), { flags: {}, rest: ['exec', '--runs=3'] });
  });

  it('leaves words that only look like keys of an object to the caller', () => {
    assert.deepStrictEqual(parsePeerArgs(['constructor', '__proto__', '--toString']), { flags: {}, rest: ['constructor', '__proto__', '--toString'] });
  });

  it('refuses a flag without a path, an empty one, and one given twice', () => {
    assert.strictEqual(parsePeerArgs(['--runc']), '--runc: expected a path');
    assert.strictEqual(parsePeerArgs(['--runc', '--runs', '2']), '--runc: expected a path');
    assert.strictEqual(parsePeerArgs(['--crun=']), '--crun: expected a path');
    assert.strictEqual(parsePeerArgs(['--containerd', 'a', '--containerd=b']), '--containerd given twice (one run measures one containerd)');
    assert.strictEqual(parsePeerArgs(['--crio-socket', 'a', '--crio-socket', 'b']), '--crio-socket given twice (one run measures one CRI-O)');
  });
});

describe('bench peers: version strings', () => {
  it('reads Debian\'s containerd 1.6 and an upstream 2.x build', () => {
    assert.deepStrictEqual(parseContainerdVersion(DEBIAN_CONTAINERD), { major: 1, minor: 6, text: '1.6.20~ds1' });
    assert.deepStrictEqual(parseContainerdVersion(CONTAINERD_2), { major: 2, minor: 1, text: '2.1.5' });
    assert.deepStrictEqual(parseContainerdVersion('containerd containerd.io 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da\n'), { major: 1, minor: 7, text: '1.7.27' });
  });

  it('refuses what is not containerd --version output', () => {
    assert.throws(() => parseContainerdVersion('runc version 1.3.6'), /not the output of containerd --version/);
  });

  it('reads the first line of runc and crun --version', () => {
    assert.strictEqual(parseOciRuntimeVersion('runc', RUNC), 'runc 1.3.6');
    assert.strictEqual(parseOciRuntimeVersion('runc', 'runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\n'), 'runc 1.1.5+ds1');
    assert.strictEqual(parseOciRuntimeVersion('crun', CRUN), 'crun 1.8.1');
    assert.throws(() => parseOciRuntimeVersion('runc', CRUN), /not the output of runc --version/);
  });

  it('names a CRI runtime by its CRI Version answer', () => {
    assert.strictEqual(criVersionText({ runtime_name: 'cri-o', runtime_version: '1.31.3' }), 'cri-o 1.31.3');
    assert.strictEqual(criVersionText({ runtime_name: 'containerd', runtime_version: 'v2.1.5' }), 'containerd 2.1.5');
  });
});

describe('bench peers: lookup', () => {
  let dir: string;
  let bin: string;
  const stub = (name: string, output: string) => {
    const p = path.join(bin, name);
    fs.writeFileSync(p, `#!/bin/sh\nprintf '%s' '${output}'\n`, { mode: 0o755 });
    return p;
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-peers-test-'));
    bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('finds an executable file on $PATH, not a directory or a file without x', () => {
    fs.mkdirSync(path.join(dir, 'a', 'runc'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'a', 'crun'), '');
    const runc = stub('runc', RUNC);
    assert.strictEqual(findOnPath('runc', `${path.join(dir, 'a')}::${bin}`), runc);
    assert.strictEqual(findOnPath('crun', `${path.join(dir, 'a')}:${bin}`), null);
  });

  it('finds the peers on $PATH with their versions, ctr beside containerd, and says why one is absent', async () => {
    const containerd = stub('containerd', CONTAINERD_2);
    const ctr = stub('ctr', 'ctr github.com/containerd/containerd/v2 v2.1.5\n');
    const runc = stub('runc', RUNC);
    const peers = await resolvePeers({}, bin);
    assert.deepStrictEqual(peers, {
      containerd: { found: true, path: containerd, version: 'containerd 2.1.5' },
      ctr: { found: true, path: ctr, version: 'ctr 2.1.5' },
      runc: { found: true, path: runc, version: 'runc 1.3.6' },
      crun: { found: false, why: 'crun not on $PATH' },
      crio: { found: false, why: 'no --crio-socket given' },
    });
  });

  it('takes ctr from the install a containerd symlink points to', async () => {
    const install = path.join(dir, 'containerd-2.1.5', 'bin');
    fs.mkdirSync(install, { recursive: true });
    fs.writeFileSync(path.join(install, 'containerd'), `#!/bin/sh\nprintf '%s' '${CONTAINERD_2}'\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(install, 'ctr'), `#!/bin/sh\nprintf '%s' 'ctr github.com/containerd/containerd/v2 v2.1.5\n'\n`, { mode: 0o755 });
    stub('ctr', 'ctr github.com/containerd/containerd 1.6.20~ds1\n');
    const link = path.join(dir, 'containerd');
    fs.symlinkSync(path.join(install, 'containerd'), link);
    const peers = await resolvePeers({ containerd: link }, bin);
    assert.ok(typeof peers !== 'string');
    assert.deepStrictEqual(peers.containerd, { found: true, path: link, version: 'containerd 2.1.5' });
    assert.deepStrictEqual(peers.ctr, { found: true, path: path.join(install, 'ctr'), version: 'ctr 2.1.5' });
  });

  it('takes named binaries over $PATH, leaves out a peer named none, and refuses a named one that is unusable', async () => {
    const other = path.join(dir, 'other');
    fs.mkdirSync(other);
    const crun = path.join(other, 'crun');
    fs.writeFileSync(crun, `#!/bin/sh\nprintf '%s' '${CRUN}'\n`, { mode: 0o755 });
    stub('crun', 'crun version 0.1\n');
    const peers = await resolvePeers({ crun, runc: 'none' }, bin);
    assert.ok(typeof peers !== 'string');
    assert.deepStrictEqual(peers.crun, { found: true, path: crun, version: 'crun 1.8.1' });
    assert.deepStrictEqual(peers.runc, { found: false, why: 'left out (--runc none)' });
    assert.deepStrictEqual(peers.ctr, { found: false, why: 'no containerd: containerd not on $PATH' });

    const broken = stub('containerd', 'containerd: error while loading shared libraries\n');
    assert.strictEqual(await resolvePeers({ containerd: broken }, bin), `--containerd ${broken}: ${broken} --version: not the output of containerd --version: "containerd: error while loading shared libraries\\n"`);
    assert.strictEqual(await resolvePeers({ runc: path.join(dir, 'nope') }, bin), `--runc ${path.join(dir, 'nope')}: ${path.join(dir, 'nope')} is not an executable file`);
    const crio = await resolvePeers({ crioSocket: path.join(dir, 'crio.sock') }, bin);
    assert.ok(typeof crio === 'string' && crio.startsWith(`--crio-socket ${path.join(dir, 'crio.sock')}: CRI Version on `), String(crio));
  });
});

describe('bench peers: a running peer\'s process', () => {
  it('is the process that listens on the socket (here this one)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-peers-test-'));
    const sock = path.join(dir, 'crio.sock');
    const server = net.createServer();
    try {
      await new Promise<void>((resolve) => server.listen(sock, resolve));
      assert.strictEqual(listenerPid(sock), process.pid);
      assert.throws(() => listenerPid(path.join(dir, 'other.sock')), /nothing listens on .*other\.sock/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bench peers: report', () => {
  it('joins the versions of a subject\'s peers and gives null for one not measured', () => {
    const r = new PeerReport();
    assert.strictEqual(r.add('containerd_runc', { found: true, path: '/c', version: 'containerd 2.1.5' }, { found: true, path: '/r', version: 'runc 1.3.6' }), true);
    assert.strictEqual(r.add('containerd_crun', { found: true, path: '/c', version: 'containerd 2.1.5' }, { found: false, why: 'crun not on $PATH' }), false);
    r.notMeasured('cri-o', 'it did not answer');
    assert.deepStrictEqual(r.json(), { containerd_runc: 'containerd 2.1.5 + runc 1.3.6', containerd_crun: null, 'cri-o': null });
    assert.deepStrictEqual(r.lines(), [
      'peer containerd_runc: containerd 2.1.5 + runc 1.3.6 (/c, /r)',
      'peer containerd_crun: not measured (crun not on $PATH)',
      'peer cri-o: not measured (it did not answer)',
    ]);
    assert.strictEqual(r.measured('containerd_runc'), true);
    assert.strictEqual(r.measured('containerd_crun'), false);
  });
});

describe('containerd fixture: config by version', () => {
  const o = {
    dir: '/tmp/ctd',
    registryHost: '127.0.0.1:5000',
    mirrors: ['docker.io'],
    cniConfDir: '/tmp/ctd/net.d',
    sandboxImage: 'docker.io/bench/pause:1',
    runtimeBinary: '/opt/runc/bin/runc',
    cri: { restrict_oom_score_adj: true, max_concurrent_downloads: '3', stream_idle_timeout: '1h' },
  };
  type Table = Record<string, unknown>;
  // smol-toml's tables have no prototype; plain objects compare with deepStrictEqual.
  const read = (toml: string) => JSON.parse(JSON.stringify(parse(toml)));
  const at = (t: Table, ...keys: string[]) => keys.reduce<Table>((x, k) => x[k] as Table, t);

  it('writes a version 2 config with the one CRI table for containerd 1.x', () => {
    const c = read(containerdConfig(o, { major: 1, minor: 6 }, '/usr/bin/containerd-shim-runc-v2'));
    assert.strictEqual(c.version, 2);
    assert.strictEqual(at(c, 'grpc').address, '/tmp/ctd/containerd.sock');
    assert.strictEqual(at(c, 'plugins', 'io.containerd.internal.v1.opt').path, '/tmp/ctd/opt');
    const cri = at(c, 'plugins', 'io.containerd.grpc.v1.cri');
    assert.strictEqual(cri.sandbox_image, 'docker.io/bench/pause:1');
    assert.strictEqual(cri.restrict_oom_score_adj, true);
    assert.strictEqual(cri.max_concurrent_downloads, '3');
    assert.deepStrictEqual(at(cri, 'registry'), { config_path: '/tmp/ctd/certs.d' });
    assert.deepStrictEqual(at(cri, 'cni'), { bin_dir: '/usr/lib/cni', conf_dir: '/tmp/ctd/net.d' });
    assert.deepStrictEqual(at(cri, 'containerd', 'runtimes', 'runc'), {
      runtime_type: 'io.containerd.runc.v2',
      runtime_path: '/usr/bin/containerd-shim-runc-v2',
      options: { BinaryName: '/opt/runc/bin/runc' },
    });
    assert.strictEqual(at(cri, 'containerd').default_runtime_name, 'runc');
  });

  it('writes a version 3 config for containerd 2.x, each key in the plugin that reads it', () => {
    const c = read(containerdConfig(o, { major: 2, minor: 1 }, '/opt/containerd/bin/containerd-shim-runc-v2'));
    assert.strictEqual(c.version, 3);
    assert.strictEqual(c.root, '/tmp/ctd/root');
    assert.strictEqual(at(c, 'plugins', 'io.containerd.nri.v1.nri').socket_path, '/tmp/ctd/nri.sock');
    assert.deepStrictEqual(at(c, 'plugins', 'io.containerd.grpc.v1.cri'), { stream_idle_timeout: '1h' });
    const images = at(c, 'plugins', 'io.containerd.cri.v1.images');
    assert.deepStrictEqual(images, { max_concurrent_downloads: '3', pinned_images: { sandbox: 'docker.io/bench/pause:1' }, registry: { config_path: '/tmp/ctd/certs.d' } });
    const rt = at(c, 'plugins', 'io.containerd.cri.v1.runtime');
    assert.strictEqual(rt.restrict_oom_score_adj, true);
    assert.deepStrictEqual(at(rt, 'cni'), { bin_dirs: ['/usr/lib/cni'], conf_dir: '/tmp/ctd/net.d' });
    assert.deepStrictEqual(at(rt, 'containerd', 'runtimes', 'runc'), {
      runtime_type: 'io.containerd.runc.v2',
      runtime_path: '/opt/containerd/bin/containerd-shim-runc-v2',
      options: { BinaryName: '/opt/runc/bin/runc' },
    });
    assert.strictEqual(at(c, 'plugins', 'io.containerd.grpc.v1.cri').sandbox_image, undefined);
  });

  it('gives containerd 2.0 the CNI bin_dir it knows (bin_dirs came in 2.1)', () => {
    const c = read(containerdConfig(o, { major: 2, minor: 0 }));
    assert.deepStrictEqual(at(c, 'plugins', 'io.containerd.cri.v1.runtime', 'cni'), { bin_dir: '/usr/lib/cni', conf_dir: '/tmp/ctd/net.d' });
    assert.strictEqual(at(c, 'plugins', 'io.containerd.cri.v1.runtime', 'containerd', 'runtimes', 'runc').runtime_path, undefined);
  });
});
