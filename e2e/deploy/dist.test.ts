// `npm run dist` (hack/dist.sh) and the release's install.sh / uninstall.sh: the tarball
// holds skiffd, the CLI, the static shim, production dependencies only, the unit and a
// default config; installed under a throwaway root it runs pods-ready skiffd that the
// installed CLI talks to; uninstalled, nothing of it is left.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { runTempDir } from '../fixtures/cleanup';

const REPO = path.resolve(__dirname, '../../..');

describe('release tarball: npm run dist, install.sh, uninstall.sh', function () {
  this.timeout(180_000);
  let work: string;
  before(() => {
    work = runTempDir('skiff-dist-');
  });
  after(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('packs, installs, runs and uninstalls', async () => {
    const tarball = execFileSync('bash', [path.join(REPO, 'hack/dist.sh'), path.join(work, 'out')]).toString().trim().split('\n').pop()!;
    assert.match(path.basename(tarball), /^skiff-\d+\.\d+\.\d+-linux-\w+\.tar\.gz$/);
    const files = execFileSync('tar', ['-tzf', tarball], { maxBuffer: 1 << 26 }).toString().split('\n');
    const top = files[0].split('/')[0];
    for (const f of ['bin/skiffd', 'bin/skiff', 'dist/src/skiffd.js', 'dist/src/cli/skiff.js', 'api/cri/v1/api.proto', 'shim/build/skiff-shim', 'shim/build/skiff-unpack', 'deploy/systemd/skiff.service', 'config.toml.example', 'install.sh', 'uninstall.sh', 'node_modules/@grpc/grpc-js/package.json'])
      assert.ok(files.includes(`${top}/${f}`), `${f} is in the tarball`);
    assert.ok(!files.some((f) => f.endsWith('.test.js')), 'no tests');
    assert.ok(!files.some((f) => f.includes('node_modules/mocha/') || f.includes('node_modules/typescript/')), 'no dev dependencies');

    execFileSync('tar', ['-C', work, '-xzf', tarball]);
    const headers = execFileSync('readelf', ['-l', '-d', path.join(work, top, 'shim/build/skiff-shim')]).toString();
    assert.ok(!/INTERP|NEEDED/.test(headers), 'the shim is static: no interpreter, no shared libraries');
    const unpackNeeds = [...execFileSync('readelf', ['-d', path.join(work, top, 'shim/build/skiff-unpack')]).toString().matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]);
    assert.deepEqual(unpackNeeds, ['libc.so.6'], 'skiff-unpack needs only glibc: zlib, zstd and libcrypto are linked in');
    const root = path.join(work, 'root');
    execFileSync(path.join(work, top, 'install.sh'), ['--root', root]);
    const lib = path.join(root, 'usr/local/lib/skiff');
    assert.equal(fs.readlinkSync(path.join(root, 'usr/local/bin/skiffd')), '/usr/local/lib/skiff/bin/skiffd');
    assert.match(fs.readFileSync(path.join(root, 'etc/systemd/system/skiff.service'), 'utf8'), /^ExecStart=\/usr\/local\/lib\/skiff\/bin\/skiffd$/m);
    assert.ok(fs.existsSync(path.join(root, 'etc/skiff/config.toml')));

    // The installed skiffd, reading the installed default config, on throwaway dirs.
    const dirs = { root: path.join(work, 'var'), state: path.join(work, 'run'), sock: path.join(work, 'run', 'skiff.sock') };
    const log = fs.openSync(path.join(work, 'skiffd.log'), 'w');
    const skiffd = spawn(path.join(lib, 'bin/skiffd'), ['--config', path.join(root, 'etc/skiff/config.toml'), '--root', dirs.root, '--state', dirs.state, '--cri.socket', dirs.sock, '--metrics.address', '', '--streaming.address', '127.0.0.1:0', '--network.conf_dir', path.join(work, 'net.d'), '--network.write_default_config', 'false', '--cri.cgroup_parent', `/skiff-dist-test-${process.pid}`], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    try {
      let version = '';
      for (let i = 0; i < 100 && !version; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          version = execFileSync(path.join(lib, 'bin/skiff'), ['--socket', dirs.sock, 'version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
        } catch {
          /* not up yet */
        }
      }
      const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
      assert.match(version, new RegExp(`^skiff ${pkg.version.replace(/\./g, '\\.')} \\(CRI v1\\)`), fs.readFileSync(path.join(work, 'skiffd.log'), 'utf8'));
    } finally {
      const exited = new Promise((r) => skiffd.once('exit', r));
      skiffd.kill('SIGTERM');
      await exited;
    }

    execFileSync(path.join(lib, 'uninstall.sh'), ['--root', root, '--purge']);
    const left = execFileSync('find', [root, '-mindepth', '1', '-not', '-type', 'd']).toString().trim();
    assert.equal(left, '', 'nothing of skiff left under the root');
  });
});
