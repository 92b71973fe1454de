import assert from 'node:assert/strict';
import { CgroupFacts, cgroupMountsOf, hierarchiesOf } from './cgroup_facts';

const MOUNTINFO = [
  '22 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
  '50 22 0:40 / /mnt/my\\040cgroup rw - cgroup cgroup rw,memory',
  '',
].join('\n');

describe('CgroupFacts', () => {
  it('takes the cgroup and cgroup2 mounts under /sys/fs/cgroup/ from mountinfo, in its order', () => {
    assert.deepEqual(cgroupMountsOf(MOUNTINFO), [
      { fstype: 'cgroup', path: '/sys/fs/cgroup/cpu', dev: '0:29', options: 'rw,cpu' },
      { fstype: 'cgroup', path: '/sys/fs/cgroup/systemd', dev: '0:37', options: 'rw,name=systemd' },
      { fstype: 'cgroup2', path: '/sys/fs/cgroup/unified', dev: '0:38', options: 'rw' },
    ]);
  });

  it('names the hierarchies of /proc/self/cgroup without the paths', () => {
    assert.deepEqual(hierarchiesOf('9:name=systemd:/a/b\n2:cpu,cpuacct:/\n0::/x:y\n'), ['9:name=systemd', '2:cpu,cpuacct', '0:']);
  });

  it('reads mountinfo again only when the hierarchies change', async function () {
    const reads: string[] = [];
    let cgroup = '1:cpu:/\n0::/\n';
    const facts = new CgroupFacts(async (p) => {
      reads.push(p);
      return p === '/proc/self/cgroup' ? cgroup : '';
    });
    const first = await facts.arg();
    if (first === undefined) this.skip(); // a cgroup2-only host passes nothing
    assert.deepEqual(JSON.parse(first!), { hierarchies: ['1:cpu', '0:'], mounts: [] });
    await facts.arg();
    assert.equal(reads.filter((p) => p === '/proc/self/mountinfo').length, 1);
    cgroup = '13:hugetlb:/\n1:cpu:/\n0::/\n';
    assert.deepEqual(JSON.parse((await facts.arg())!).hierarchies, ['13:hugetlb', '1:cpu', '0:']);
    assert.equal(reads.filter((p) => p === '/proc/self/mountinfo').length, 2);
  });
});
