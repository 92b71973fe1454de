// deploy/systemd/skiff.service and skiffd's side of it: the unit lets shims outlive
// skiffd (KillMode=process) and waits for skiffd's READY=1, which skiffd sends through
// $NOTIFY_SOCKET once its CRI socket answers, and STOPPING=1 when it stops.
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadAll } from 'js-yaml';
import { SCHEMA } from '../../src/config';
import { sdNotify } from '../../src/systemd';
import { runTempDir } from '../fixtures/cleanup';
import { NotifySocket } from '../fixtures/notify';
import { TestSkiffd } from '../fixtures/skiffd';

const UNIT = path.resolve(__dirname, '../../../deploy/systemd/skiff.service');
const REPO = path.resolve(__dirname, '../../..');

/** key -> values of a unit file's [Service] section. */
function serviceSection(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#')) continue;
    const s = /^\[(.+)\]$/.exec(l);
    if (s) section = s[1];
    else if (section === 'Service') {
      const [k, ...v] = l.split('=');
      out.set(k, [...(out.get(k) ?? []), v.join('=')]);
    }
  }
  return out;
}

describe('systemd: the unit and sd_notify', function () {
  this.timeout(60_000);

  it('tells systemd READY=1 once the CRI socket answers, and STOPPING=1', async () => {
    const sock = new NotifySocket();
    let skiffd: TestSkiffd | undefined;
    try {
      skiffd = await TestSkiffd.start({ args: ['--network.write_default_config', 'false'], env: { NOTIFY_SOCKET: sock.name } });
      const ready = await sock.next();
      assert.match(ready, /^READY=1\nMAINPID=\d+\nSTATUS=serving CRI on \S+skiff\.sock$/);
      assert.equal(Number(/MAINPID=(\d+)/.exec(ready)![1]), skiffd.pid, 'the launcher execs node: MAINPID is the unit main process');
      assert.equal((await skiffd.client.runtime('Version', {})).runtime_name, 'skiff');
      await skiffd.stop();
      assert.equal(await sock.next(), 'STOPPING=1');
    } finally {
      await skiffd?.cleanup();
      sock.close();
    }
  });

  it('does nothing without $NOTIFY_SOCKET, and fails naming a socket nobody listens on', () => {
    assert.equal(sdNotify('READY=1', ''), false);
    assert.throws(() => sdNotify('READY=1', `@skiff-test-nobody-${process.pid}`), /sendto sd_notify to @skiff-test-nobody-\d+: errno 111/);
    assert.throws(() => sdNotify('READY=1', `/${'x'.repeat(120)}`), /longer than a unix socket path/);
  });

  it('keeps shims on a restart of skiffd, waits for READY=1, and is a valid unit', function () {
    const service = serviceSection(fs.readFileSync(UNIT, 'utf8'));
    assert.deepEqual(service.get('Type'), ['notify']);
    assert.deepEqual(service.get('KillMode'), ['process']);
    assert.deepEqual(service.get('Delegate'), ['yes']);
    assert.deepEqual(service.get('Restart'), ['always']);
    assert.deepEqual(service.get('ExecStart'), ['/usr/local/lib/skiff/bin/skiffd']);
    const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => fs.existsSync(p));
    if (!analyze) {
      console.log('      (systemd-analyze not installed: unit syntax not verified)');
      return;
    }
    // Verified with ExecStart pointing at this checkout's launcher, as install.sh places it.
    const dir = runTempDir('skiff-unit-');
    try {
      const unit = path.join(dir, 'skiff.service');
      fs.writeFileSync(unit, fs.readFileSync(UNIT, 'utf8').replace('/usr/local/lib/skiff/bin/skiffd', path.join(REPO, 'bin/skiffd')));
      const r = spawnSync(analyze, ['verify', unit]);
      assert.equal(r.status, 0, r.stderr.toString());
      assert.equal(r.stderr.toString().trim(), '', 'no warnings');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/kubelet: wiring kubelet to skiff', () => {
  const DEPLOY = path.resolve(__dirname, '../../../deploy/kubelet');
  const socket = `unix://${SCHEMA['cri.socket'].default}`;

  it("points kubelet at skiffd's default socket with the cgroupfs driver", () => {
    const [cfg] = loadAll(fs.readFileSync(path.join(DEPLOY, 'kubelet-config.yaml'), 'utf8')) as Record<string, unknown>[];
    assert.deepEqual(
      { kind: cfg.kind, containerRuntimeEndpoint: cfg.containerRuntimeEndpoint, imageServiceEndpoint: cfg.imageServiceEndpoint, cgroupDriver: cfg.cgroupDriver },
      { kind: 'KubeletConfiguration', containerRuntimeEndpoint: socket, imageServiceEndpoint: socket, cgroupDriver: 'cgroupfs' },
    );
    const dropIn = fs.readFileSync(path.join(DEPLOY, '10-skiff.conf'), 'utf8');
    assert.ok(dropIn.includes(`--container-runtime-endpoint=${socket}`) && dropIn.includes('--cgroup-driver=cgroupfs'));
    assert.match(dropIn, /^After=skiff\.service$/m);
  });

  it("names skiffd's default runtime handler in the RuntimeClass", () => {
    const [rc] = loadAll(fs.readFileSync(path.join(DEPLOY, 'runtimeclass.yaml'), 'utf8')) as { apiVersion: string; kind: string; handler: string; metadata: { name: string } }[];
    assert.deepEqual([rc.apiVersion, rc.kind, rc.metadata.name, rc.handler], ['node.k8s.io/v1', 'RuntimeClass', 'skiff', SCHEMA['cri.runtime_handler'].default]);
  });

  it("names skiffd's default userns handler in the skiff-userns RuntimeClass", () => {
    const [rc] = loadAll(fs.readFileSync(path.join(DEPLOY, 'runtimeclass-userns.yaml'), 'utf8')) as { apiVersion: string; kind: string; handler: string; metadata: { name: string } }[];
    assert.deepEqual([rc.apiVersion, rc.kind, rc.metadata.name, rc.handler], ['node.k8s.io/v1', 'RuntimeClass', 'skiff-userns', SCHEMA['cri.userns_runtime_handler'].default]);
  });
});
