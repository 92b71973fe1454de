// The host's cgroup hierarchies as skiffd passes them (--cgroups): the shim takes them
// while they hold and finds them in /proc/self/mountinfo once they no longer do.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { CgroupFacts, HostCgroups } from '../../src/shim/cgroup_facts';
import { CGROUP_PARENT, TestPod, cgroupDirs } from './fixtures';

const FALLBACK = /the cgroup hierarchies skiffd passed have changed since/;

describe('shim cgroup hierarchies passed by skiffd', function () {
  let facts: string | undefined;
  before(async function () {
    facts = await new CgroupFacts().arg();
    if (!facts) this.skip(); // /sys/fs/cgroup is one cgroup2 mount: nothing to pass
  });

  /** The hierarchies holding the pod's cgroup, and what the shim logged. */
  async function podIn(name: string, cgroups: string | undefined): Promise<{ dirs: string[]; log: string }> {
    const podCg = `${CGROUP_PARENT}/${name}`;
    const t = await TestPod.start({ hostname: name, cgroupsPath: `${podCg}/infra`, podCgroup: { path: podCg, resources: {} } }, undefined, cgroups);
    try {
      return { dirs: cgroupDirs(podCg).map((d) => path.dirname(path.dirname(d))), log: fs.readFileSync(path.join(t.stateDir, 'shim.log'), 'utf8') };
    } finally {
      await t.stop();
    }
  }

  it('places the pod cgroup in the same hierarchies as when it reads mountinfo itself', async () => {
    const own = await podIn('facts-none', undefined);
    const passed = await podIn('facts-passed', facts);
    assert.ok(own.dirs.length > 1, `the pod cgroup is in several hierarchies: ${own.dirs.join(', ')}`);
    assert.deepEqual(passed.dirs, own.dirs);
    assert.doesNotMatch(passed.log, FALLBACK);
  });

  it('reads mountinfo when a mount point is no longer the mount skiffd saw, or the hierarchies differ', async () => {
    const own = await podIn('facts-ref', undefined);
    const moved: HostCgroups = JSON.parse(facts!);
    moved.mounts[0].dev = '0:1';
    const added: HostCgroups = JSON.parse(facts!);
    added.hierarchies.unshift('99:no-such-controller');
    for (const [name, stale] of [['facts-moved', moved], ['facts-added', added]] as const) {
      const got = await podIn(name, JSON.stringify(stale));
      assert.match(got.log, FALLBACK, name);
      assert.deepEqual(got.dirs, own.dirs, name);
    }
  });
});
