import assert from 'node:assert/strict';
import type { ContainerRecord, ContainerService } from '../container/container_service';
import type { Isolation } from '../container/isolation';
import { fakeIsolation } from '../container/isolation_fake';
import type { SandboxService } from '../sandbox/sandbox_service';
import { IsolationFamily } from './isolation_family';
import { Metrics } from './metrics';

/** Facts of a container run as root in no user namespace, with no limits. */
const facts = (over: Partial<Isolation> = {}): Isolation => fakeIsolation({ uid: 0, unbounded: ['memory', 'pids', 'cpu', 'io'], limits: { cpus: null, memoryBytes: null, pids: null }, ...over });

/** Services holding `ctrs`; isolation() answers from `of` and counts its calls. */
function services(ctrs: Partial<ContainerRecord>[], of: Map<string, Isolation>) {
  const pods = new Map([['p1', { id: 'p1', state: 'ready', config: { metadata: { name: 'web "a"\\b', namespace: 'ops\nx' } } }]]);
  const calls: string[] = [];
  const containers = {
    list: () => ctrs as ContainerRecord[],
    isolation: async (c: ContainerRecord) => {
      calls.push(c.id);
      return of.get(c.id)!;
    },
    onChange() {},
  } as unknown as ContainerService;
  const sandboxes = { get: (id: string) => pods.get(id), list: () => [...pods.values()], shim: () => undefined, onShimLost() {} } as unknown as SandboxService;
  return { containers, sandboxes, calls };
}

const ctr = (id: string, name: string, state = 'running'): Partial<ContainerRecord> => ({ id, podId: 'p1', state: state as ContainerRecord['state'], config: { metadata: { name, attempt: 0 } } as ContainerRecord['config'] });

describe('skiff_container_isolation', () => {
  it('gives each running container its 13 checks, labels escaped as the text format wants, and none for others', async () => {
    const of = new Map([['c1', facts({ privileged: true, extraCapabilities: ['SYS_ADMIN', 'NET_ADMIN'] })], ['c2', facts()]]);
    const { containers, sandboxes } = services([ctr('c1', 'app'), ctr('c2', 'done', 'exited')], of);
    const text = await new IsolationFamily(sandboxes, containers).text();
    const lines = text.trimEnd().split('\n');
    assert.match(lines[0], /^# HELP skiff_container_isolation Isolation facts/);
    assert.equal(lines[1], '# TYPE skiff_container_isolation gauge');
    assert.equal(lines.length, 2 + 13);
    const labels = 'namespace="ops\\nx",pod="web \\"a\\"\\\\b",container="app"';
    assert.ok(lines.includes(`skiff_container_isolation{${labels},check="privileged"} 1`), lines.join('\n'));
    assert.ok(lines.includes(`skiff_container_isolation{${labels},check="extra_capabilities"} 2`));
    assert.ok(lines.includes(`skiff_container_isolation{${labels},check="root_on_host"} 1`));
    assert.ok(lines.includes(`skiff_container_isolation{${labels},check="no_io_weight"} 1`));
    assert.ok(!text.includes('container="done"'));
  });

  it('formats anew when a container has new facts, and drops a container that stopped', async () => {
    const of = new Map([['c1', facts()], ['c2', facts()]]);
    const list = [ctr('c1', 'a'), ctr('c2', 'b')];
    const { containers, sandboxes, calls } = services(list, of);
    const family = new IsolationFamily(sandboxes, containers);
    assert.match(await family.text(), /container="a",check="root_on_host"\} 1/);
    of.set('c1', facts({ uid0IsHostRoot: false })); // a restarted process in a user namespace
    list[1].state = 'exited';
    const text = await family.text();
    assert.match(text, /container="a",check="root_on_host"\} 0/);
    assert.ok(!text.includes('container="b"'));
    assert.deepEqual(calls, ['c1', 'c2', 'c1']);
  });

  it('is in every scrape, before the "# EOF" of OpenMetrics', async () => {
    const { containers, sandboxes } = services([ctr('c1', 'app')], new Map([['c1', facts()]]));
    const metrics = new Metrics();
    metrics.watch(sandboxes, containers, { list: () => [] } as never);
    const text = (await metrics.scrape(undefined)).body;
    assert.match(text, /^skiff_container_isolation\{.*container="app",check="host_pid"\} 0$/m);
    const om = await metrics.scrape('application/openmetrics-text; version=1.0.0');
    assert.match(om.contentType, /openmetrics/);
    assert.ok(om.body.endsWith('# EOF\n'), om.body.slice(-80));
    assert.ok(om.body.indexOf('skiff_container_isolation{') < om.body.lastIndexOf('# EOF'));
    assert.equal(om.body.match(/# EOF/g)?.length, 1);
  });
});
