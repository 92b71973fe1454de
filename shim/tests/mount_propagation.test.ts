// Mount propagation between the host and a container's bind mount of a shared host
// mount, as CRI asks for it (skiffd's spec: the mount's option and rootfsPropagation):
// rprivate sees nothing, rslave sees the host's new mounts, rshared also shows the
// container's to the host. Every way a container's mount namespace is made: from the
// pod's template, with the pod's network namespace or the host's, and as a copy of the
// host's (a createContainer hook, which may need the host's paths, asks for that).
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_CAPS, TestPod, cleanupRun, mountsUnder, podNamespaces, tempDir, waitFor } from './fixtures';

const PROC = { env: ['PATH=/bin'], cwd: '/' };
const MODES = ['rprivate', 'rslave', 'rshared'] as const;

describe('shim mount propagation', function () {
  let shared = '';
  before(() => {
    shared = path.join(tempDir('skiff-prop-'), 'shared');
    fs.mkdirSync(shared);
    execFileSync('mount', ['-t', 'tmpfs', 'prop', shared]);
    execFileSync('mount', ['--make-shared', shared]);
  });
  after(() => {
    for (const m of mountsUnder(shared).reverse()) execFileSync('umount', ['-l', m]);
    cleanupRun();
  });

  const WAYS = { 'from the template': 't', 'from the template, in the host\'s network namespace': 'n', 'from a copy of the host': 'h' } as const;
  for (const [how, way] of Object.entries(WAYS)) {
    for (const mode of MODES) {
      it(`${mode}, ${how}`, async () => {
        const t = await TestPod.start({ hostname: 'prop' });
        const tag = `${mode}-${way}`;
        const fromHost = path.join(shared, `host-${tag}`);
        const fromCtr = path.join(shared, `ctr-${tag}`);
        fs.mkdirSync(fromHost);
        fs.mkdirSync(fromCtr);
        try {
          const namespaces = podNamespaces(t.pod).filter((n) => way !== 'n' || n.type !== 'network');
          await t.run({
            id: 'c',
            args: ['sleep', '1000'],
            namespaces,
            edit: (s) => {
              delete s.hostname;
              s.mounts.push({ destination: '/vol', type: 'bind', source: shared, options: ['rbind', mode, 'rw'] });
              s.linux.rootfsPropagation = mode === 'rprivate' ? undefined : mode;
              const caps = [...DEFAULT_CAPS, 'CAP_SYS_ADMIN'];
              s.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
              if (way === 'h') s.hooks = { createContainer: [{ path: '/bin/true' }] };
            },
          });
          const inCtr = async (args: string[]) => (await t.client.execSync({ id: 'c', process: { args, ...PROC } }));
          const ctrMounts = async () => (await inCtr(['cat', '/proc/self/mountinfo'])).stdout.toString();
          if (way === 'n') {
            const links = (await inCtr(['ls', '/sys/class/net'])).stdout.toString().split(/\s+/).filter(Boolean).sort();
            assert.deepEqual(links, fs.readdirSync('/sys/class/net').sort(), "the container's /sys shows the host's network devices");
          }
          execFileSync('mount', ['-t', 'tmpfs', 'fromhost', fromHost]);
          const seen = (await ctrMounts()).includes(` /vol/host-${tag} `);
          assert.equal(seen, mode !== 'rprivate', `the host's new mount ${seen ? 'is' : 'is not'} seen in the container`);
          const r = await inCtr(['mount', '-t', 'tmpfs', 'fromctr', `/vol/ctr-${tag}`]);
          assert.equal(r.exitCode, 0, r.stderr.toString());
          if (mode === 'rshared') await waitFor(() => mountsUnder(fromCtr).length > 0, 'the container\'s mount on the host');
          assert.equal(mountsUnder(fromCtr).length > 0, mode === 'rshared', 'the container\'s mount is on the host only with rshared');
        } finally {
          await t.stop();
          for (const m of [...mountsUnder(fromCtr), ...mountsUnder(fromHost)].reverse()) execFileSync('umount', ['-l', m]);
        }
      });
    }
  }
});
