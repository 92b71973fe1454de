// CniNetwork against a plugin of the test's own (a shell script that logs each call and
// answers ADD with an address): the cache entry is written before ADD and dropped when the
// set-up is called off, and the ADD result, written behind the set-up, is what DEL gets.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CniNetwork } from './cni';

const PLUGIN = `#!/bin/sh
conf=$(cat)
echo "$CNI_COMMAND $conf" >> "$(dirname "$0")/calls"
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"10.9.0.7/24","interface":0}]}'
fi
`;

describe('CniNetwork', () => {
  let dir: string;
  let cni: CniNetwork;
  const calls = () => (fs.existsSync(path.join(dir, 'bin', 'calls')) ? fs.readFileSync(path.join(dir, 'bin', 'calls'), 'utf8').split('\n').filter(Boolean) : []);
  const cacheFiles = () => fs.readdirSync(path.join(dir, 'cache'));
  const pod = (id: string) => ({ id, name: 'web', namespace: 'ns', uid: 'u1', netnsPath: path.join(dir, 'netns', id) });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-cni-'));
    for (const d of ['bin', 'conf', 'cache']) fs.mkdirSync(path.join(dir, d));
    fs.writeFileSync(path.join(dir, 'bin', 'fake'), PLUGIN, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'conf', '10-fake.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'fake', plugins: [{ type: 'fake' }] }));
    cni = new CniNetwork({ confDir: path.join(dir, 'conf'), binDirs: [path.join(dir, 'bin')], cacheDir: path.join(dir, 'cache') });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes the cache entry while the caller makes the netns, runs ADD once it is ready, and DEL gets the result', async () => {
    let ready!: () => void;
    const setUp = cni.setUp(pod('a'), new Promise<void>((res) => (ready = res)));
    await until(() => cacheFiles().includes('a.json'));
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'cache', 'a.json'), 'utf8')).pending, true, 'the pending entry comes first');
    assert.deepEqual(calls(), [], 'no plugin before the caller is ready');
    ready();
    const net = await setUp;
    assert.deepEqual(net.ips, [{ address: '10.9.0.7', family: 4, gateway: undefined }]);
    // Torn down at once: DEL waits for the result being written behind the set-up.
    await cni.tearDown('a');
    const [add, del] = calls();
    assert.match(add, /^ADD /);
    assert.match(del, /^DEL .*"prevResult":\{.*10\.9\.0\.7/, 'DEL is given the ADD result');
    assert.deepEqual(cacheFiles(), []);
  });

  it('drops the cache entry and runs no plugin when the caller fails before ADD', async () => {
    await assert.rejects(cni.setUp(pod('b'), Promise.reject(new Error('shim: clone EPERM'))), /clone EPERM/);
    assert.deepEqual(cacheFiles(), []);
    assert.deepEqual(calls(), []);
  });
});

async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 1));
  }
}
