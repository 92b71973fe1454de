import assert from 'node:assert/strict';
import type { LinuxContainerResources } from '../cri/gen/cri';
import { InvalidArgument } from '../errors';
import { MIN_MEMORY_LIMIT_BYTES, checkLinuxResources, checkMemoryFloor } from './resources';

const res = (over: Partial<LinuxContainerResources>): LinuxContainerResources => ({
  cpu_period: 0, cpu_quota: 0, cpu_shares: 0, memory_limit_in_bytes: 0, oom_score_adj: 0,
  cpuset_cpus: '', cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: 0, ...over,
});

describe('checkLinuxResources', () => {
  it('takes what kubelet sends for a pod, and nothing', () => {
    checkLinuxResources(null, 'resources');
    checkLinuxResources(res({}), 'resources');
    checkLinuxResources(res({ cpu_shares: 2, cpu_quota: -1, cpu_period: 100_000, memory_limit_in_bytes: 1 << 30, cpuset_cpus: '0-3,5', cpuset_mems: '0',
      hugepage_limits: [{ page_size: '2MB', limit: 0 }], unified: { 'memory.high': 'max' }, memory_swap_limit_in_bytes: -1 }), 'resources');
  });
  it('refuses bad values, naming the field', () => {
    const cases: [Partial<LinuxContainerResources>, string][] = [
      [{ memory_limit_in_bytes: -5 }, 'overhead.memory_limit_in_bytes'],
      [{ memory_limit_in_bytes: 2 ** 63 }, 'overhead.memory_limit_in_bytes'],
      [{ cpu_quota: 50_000 }, 'overhead.cpu_quota'],
      [{ cpu_quota: 10, cpu_period: 100_000 }, 'overhead.cpu_quota'],
      [{ cpu_period: 5 }, 'overhead.cpu_period'],
      [{ cpu_shares: 1 }, 'overhead.cpu_shares'],
      [{ cpu_shares: 1e9 }, 'overhead.cpu_shares'],
      [{ cpuset_cpus: '0-' }, 'overhead.cpuset_cpus'],
      [{ cpuset_mems: '3-1' }, 'overhead.cpuset_mems'],
      [{ memory_limit_in_bytes: 100, memory_swap_limit_in_bytes: 50 }, 'overhead.memory_swap_limit_in_bytes'],
      [{ hugepage_limits: [{ page_size: '2M', limit: 1 }] }, 'overhead.hugepage_limits[0].page_size'],
      [{ hugepage_limits: [{ page_size: '2MB', limit: -1 }] }, 'overhead.hugepage_limits[0].limit'],
      [{ hugepage_limits: [{ page_size: '2MB', limit: 1 }, { page_size: '2MB', limit: 2 }] }, 'overhead.hugepage_limits[1].page_size'],
      [{ unified: { '../memory.max': '1' } }, 'overhead.unified'],
      [{ unified: { memory: '1' } }, 'overhead.unified'],
      [{ oom_score_adj: 1001 }, 'overhead.oom_score_adj'],
    ];
    for (const [over, field] of cases)
      assert.throws(() => checkLinuxResources(res(over), 'overhead'), (e: Error) => e instanceof InvalidArgument && e.message.startsWith(`${field}:`), JSON.stringify(over));
  });
});

describe('checkMemoryFloor', () => {
  it('takes no limit (0) and limits from the minimum up', () => {
    checkMemoryFloor(0, 'linux.memory_limit_in_bytes');
    checkMemoryFloor(MIN_MEMORY_LIMIT_BYTES, 'linux.memory_limit_in_bytes');
    checkMemoryFloor(64 << 20, 'linux.memory_limit_in_bytes');
  });
  it('refuses a limit no container starts under, naming the field and the minimum', () => {
    for (const bytes of [1, 4096, MIN_MEMORY_LIMIT_BYTES - 1])
      assert.throws(
        () => checkMemoryFloor(bytes, 'config.linux.resources.memory_limit_in_bytes'),
        (e: Error) => e instanceof InvalidArgument && e.message === `config.linux.resources.memory_limit_in_bytes: ${bytes} bytes is below the minimum of 1048576 bytes (1 MiB) a container needs to start`,
      );
  });
});
