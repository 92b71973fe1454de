import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigError, loadConfig, parseArgs, printConfig } from './config';

describe('config', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-config-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (text: string) => {
    const f = path.join(dir, 'config.toml');
    fs.writeFileSync(f, text);
    return f;
  };

  it('has working defaults without a config file', async () => {
    const cfg = await loadConfig(parseArgs(['--config', file('')]));
    assert.equal(cfg['cri.socket'], '/run/skiff/skiff.sock');
    assert.equal(cfg.root, '/var/lib/skiff');
    assert.deepEqual(cfg['network.bin_dirs'], ['/opt/cni/bin', '/usr/lib/cni']);
  });

  it('reads the file and lets flags override it', async () => {
    const f = file('root = "/srv/skiff"\n[image]\nparallel_layers = 5\n[network]\nbin_dirs = ["/a", "/b"]\n');
    const cfg = await loadConfig(parseArgs(['--config', f, '--image.parallel-layers=7', '--state', '/tmp/st']));
    assert.equal(cfg.root, '/srv/skiff');
    assert.equal(cfg['image.parallel_layers'], 7);
    assert.deepEqual(cfg['network.bin_dirs'], ['/a', '/b']);
    assert.equal(cfg['cri.socket'], '/tmp/st/skiff.sock', 'the socket follows the state dir');
  });

  it('reads pinned images as a list and refuses one that is no image reference', async () => {
    const cfg = await loadConfig(parseArgs(['--config', file('[image]\npinned_images = ["docker.io/library/busybox:1", "registry.k8s.io/pause@sha256:' + 'a'.repeat(64) + '"]\n')]));
    assert.equal(cfg['image.pinned_images'].length, 2);
    assert.deepEqual((await loadConfig(parseArgs(['--config', file('')])))['image.pinned_images'], []);
    await assert.rejects(loadConfig(parseArgs(['--config', file('[image]\npinned_images = ["UPPER/case"]\n')])), (e: Error) => e instanceof ConfigError && /image\.pinned_images.*UPPER\/case/.test(e.message));
  });

  it('takes a userns handler of its own name and a pool of whole 65536-id ranges inside the 32-bit ids', async () => {
    const cfg = await loadConfig(parseArgs(['--config', file('')]));
    assert.deepEqual([cfg['cri.userns_runtime_handler'], cfg['userns.first_host_id'], cfg['userns.pod_ranges']], ['skiff-userns', 2 ** 30, 16384]);
    assert.equal((await loadConfig(parseArgs(['--config', file('[cri]\nuserns_runtime_handler = ""\n')])))['cri.userns_runtime_handler'], '', 'off');
    await assert.rejects(loadConfig(parseArgs(['--config', file('[cri]\nuserns_runtime_handler = "skiff"\n')])), /"cri\.userns_runtime_handler" must differ from "cri\.runtime_handler"/);
    await assert.rejects(loadConfig(parseArgs(['--config', file('[cri]\nuserns_runtime_handler = "No_Caps"\n')])), /must be a DNS label/);
    await assert.rejects(loadConfig(parseArgs(['--config', file('[userns]\nfirst_host_id = 100000\n')])), /"userns\.first_host_id" must be a multiple of 65536, got 100000/);
    await assert.rejects(loadConfig(parseArgs(['--config', file('[userns]\nfirst_host_id = 4294901760\npod_ranges = 1\n')])), /passes the last host id/);
    await loadConfig(parseArgs(['--config', file('[userns]\nfirst_host_id = 4294836224\npod_ranges = 1\n')]));
  });

  it('refuses unknown keys, bad values and unknown flags, naming them', async () => {
    await assert.rejects(loadConfig(parseArgs(['--config', file('[cri]\nsokcet = "/x"\n')])), (e: Error) => e instanceof ConfigError && /cri\.sokcet/.test(e.message));
    await assert.rejects(loadConfig(parseArgs(['--config', file('[image]\nparallel_layers = 0\n')])), /image\.parallel_layers/);
    await assert.rejects(loadConfig(parseArgs(['--config', file('root = "relative"\n')])), /"root" must be an absolute path/);
    await assert.rejects(loadConfig(parseArgs(['--config', file('log_level = "loud"\n')])), /log_level/);
    await assert.rejects(loadConfig(parseArgs(['--config', file('root = [\n')])), ConfigError);
    await assert.rejects(loadConfig(parseArgs(['--config', path.join(dir, 'missing.toml')])), /missing\.toml/);
    assert.throws(() => parseArgs(['--nope', '1']), /unknown flag "--nope"/);
    assert.throws(() => parseArgs(['--root']), /needs a value/);
  });

  it('takes a default pids limit (off by default) and an events kubeconfig, refusing values the kernel or the file system would not', async () => {
    const defaults = await loadConfig(parseArgs(['--config', file('')]));
    assert.deepEqual([defaults['cri.default_pids_limit'], defaults['events.kubeconfig']], [0, '']);
    const cfg = await loadConfig(parseArgs(['--config', file('[cri]\ndefault_pids_limit = 1024\n[events]\nkubeconfig = "/etc/kubernetes/kubelet.conf"\n')]));
    assert.deepEqual([cfg['cri.default_pids_limit'], cfg['events.kubeconfig']], [1024, '/etc/kubernetes/kubelet.conf']);
    for (const bad of ['-1', '1.5', '4194305'])
      await assert.rejects(loadConfig(parseArgs(['--config', file(''), '--cri.default_pids_limit', bad])), (e: Error) => e instanceof ConfigError && /cri\.default_pids_limit/.test(e.message), bad);
    await assert.rejects(loadConfig(parseArgs(['--config', file(''), '--events.kubeconfig', 'kubelet.conf'])), /"events\.kubeconfig" must be an absolute path/);
  });

  it('prints the effective configuration as TOML it can read back', async () => {
    const cfg = await loadConfig(parseArgs(['--config', file(''), '--cri.cgroup_parent', '/pods']));
    const again = await loadConfig(parseArgs(['--config', file(printConfig(cfg))]));
    assert.deepEqual(again, cfg);
  });
});
