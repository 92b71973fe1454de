// The CRI list streams of a real skiffd over gRPC (StreamPodSandboxes, StreamContainers,
// StreamContainerStats, StreamPodSandboxStats, StreamPodSandboxMetrics, StreamImages),
// with real pods, containers and images: each answers what its unary list answers, with
// the same filters; an unknown id gives an empty list and a stream with no message.
import assert from 'node:assert/strict';
import * as path from 'path';
import { readAll } from '../../src/cri/client';
import type { ContainerConfig, PodSandboxConfig } from '../../src/cri/gen/cri';
import { ContainerState, PodSandboxState } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { startTestNode, TestNode } from '../fixtures/node';
import type { TestSkiffd } from '../fixtures/skiffd';

describe('CRI list streams (skiffd over gRPC, real pods, containers and images)', function () {
  this.timeout(180_000);
  let node: TestNode;
  let skiffd: TestSkiffd;
  const pods: Record<'web' | 'db' | 'gone', { id: string; config: Reply<PodSandboxConfig> }> = {} as never;
  const ctrs: Record<'running' | 'created' | 'exited' | 'db', string> = {} as never;

  const podConfig = (name: string, labels: Record<string, string>): Reply<PodSandboxConfig> => ({
    metadata: { name, namespace: 'streams', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: path.join(skiffd.dir, 'logs', name),
    labels,
    annotations: { note: `pod ${name}` },
    linux: {},
  });
  const ctrConfig = (name: string, command: string[], labels: Record<string, string>): Reply<ContainerConfig> => ({
    metadata: { name, attempt: 0 },
    image: { image: 'busybox' },
    command,
    labels,
    log_path: `${name}.log`,
  });
  const create = async (pod: { id: string; config: Reply<PodSandboxConfig> }, name: string, command: string[], labels: Record<string, string>) =>
    (await skiffd.client.runtime('CreateContainer', { pod_sandbox_id: pod.id, config: ctrConfig(name, command, labels), sandbox_config: pod.config })).container_id;
  const waitState = async (id: string, state: ContainerState) => {
    for (let i = 0; i < 600; i++) {
      if ((await skiffd.client.runtime('ContainerStatus', { container_id: id })).status?.state === state) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`container ${id} never reached ${ContainerState[state]}`);
  };

  before(async () => {
    node = await startTestNode({
      latest: { Cmd: ['sh'], Env: ['PATH=/bin'] },
      app: { Cmd: ['sh'], Env: ['PATH=/bin'], User: '1000' },
    });
    skiffd = node.skiffd;
    const c = skiffd.client;
    for (const [name, labels] of [
      ['web', { app: 'web', tier: 'front' }],
      ['db', { app: 'db', tier: 'back' }],
      ['gone', { app: 'web', tier: 'old' }],
    ] as const) {
      const config = podConfig(name, labels);
      pods[name] = { id: (await c.runtime('RunPodSandbox', { config })).pod_sandbox_id, config };
    }
    ctrs.running = await create(pods.web, 'server', ['sleep', '1000'], { role: 'server' });
    await c.runtime('StartContainer', { container_id: ctrs.running });
    ctrs.created = await create(pods.web, 'sidecar', ['sleep', '1000'], { role: 'sidecar' });
    ctrs.exited = await create(pods.web, 'init', ['true'], { role: 'init' });
    await c.runtime('StartContainer', { container_id: ctrs.exited });
    ctrs.db = await create(pods.db, 'db', ['sleep', '1000'], { role: 'server' });
    await c.runtime('StartContainer', { container_id: ctrs.db });
    await waitState(ctrs.exited, ContainerState.CONTAINER_EXITED);
    await c.runtime('StopPodSandbox', { pod_sandbox_id: pods.gone.id });
  });
  after(async () => {
    await node?.stop();
  });

  const streamPods = async (filter: unknown) => (await readAll(skiffd.client.runtimeStream('StreamPodSandboxes', { filter } as never))).flatMap((m) => m.pod_sandboxes);
  const listPods = async (filter: unknown) => (await skiffd.client.runtime('ListPodSandbox', { filter } as never)).items;
  const streamCtrs = async (filter: unknown) => (await readAll(skiffd.client.runtimeStream('StreamContainers', { filter } as never))).flatMap((m) => m.containers);
  const listCtrs = async (filter: unknown) => (await skiffd.client.runtime('ListContainers', { filter } as never)).containers;

  it('StreamPodSandboxes answers what ListPodSandbox does, for every filter', async () => {
    const cases: [unknown, string[]][] = [
      [null, [pods.web.id, pods.db.id, pods.gone.id]],
      [{ id: pods.db.id }, [pods.db.id]],
      [{ id: pods.web.id.slice(0, 12) }, [pods.web.id]],
      [{ state: { state: PodSandboxState.SANDBOX_READY } }, [pods.web.id, pods.db.id]],
      [{ state: { state: PodSandboxState.SANDBOX_NOTREADY } }, [pods.gone.id]],
      [{ label_selector: { app: 'web' } }, [pods.web.id, pods.gone.id]],
      [{ label_selector: { app: 'web', tier: 'front' } }, [pods.web.id]],
      [{ label_selector: { app: 'web' }, state: { state: PodSandboxState.SANDBOX_NOTREADY } }, [pods.gone.id]],
    ];
    for (const [filter, want] of cases) {
      const listed = await listPods(filter);
      assert.deepEqual(listed.map((p) => p.id), want, `ListPodSandbox ${JSON.stringify(filter)}`);
      assert.deepEqual(await streamPods(filter), listed, `StreamPodSandboxes ${JSON.stringify(filter)}`);
    }
  });

  it('StreamContainers answers what ListContainers does, for every filter', async () => {
    const cases: [unknown, string[]][] = [
      [null, [ctrs.running, ctrs.created, ctrs.exited, ctrs.db]],
      [{ id: ctrs.created.slice(0, 12) }, [ctrs.created]],
      [{ pod_sandbox_id: pods.web.id }, [ctrs.running, ctrs.created, ctrs.exited]],
      [{ pod_sandbox_id: pods.db.id.slice(0, 12) }, [ctrs.db]],
      [{ state: { state: ContainerState.CONTAINER_RUNNING } }, [ctrs.running, ctrs.db]],
      [{ state: { state: ContainerState.CONTAINER_CREATED } }, [ctrs.created]],
      [{ state: { state: ContainerState.CONTAINER_EXITED } }, [ctrs.exited]],
      [{ label_selector: { role: 'server' } }, [ctrs.running, ctrs.db]],
      [{ pod_sandbox_id: pods.web.id, label_selector: { role: 'server' }, state: { state: ContainerState.CONTAINER_RUNNING } }, [ctrs.running]],
    ];
    for (const [filter, want] of cases) {
      const listed = await listCtrs(filter);
      assert.deepEqual(listed.map((c) => c.id), want, `ListContainers ${JSON.stringify(filter)}`);
      assert.deepEqual(await streamCtrs(filter), listed, `StreamContainers ${JSON.stringify(filter)}`);
    }
  });

  it('StreamImages answers what ListImages does, with and without an image filter', async () => {
    const c = skiffd.client;
    const all = (await c.image('ListImages', {})).images;
    assert.equal(all.length, 2);
    assert.deepEqual((await readAll(c.imageStream('StreamImages', {}))).flatMap((m) => m.images), all);
    for (const image of ['busybox:app', all[0].id]) {
      const listed = (await c.image('ListImages', { filter: { image: { image } } })).images;
      assert.equal(listed.length, 1, image);
      assert.deepEqual((await readAll(c.imageStream('StreamImages', { filter: { image: { image } } }))).flatMap((m) => m.images), listed);
    }
  });

  // Stats and metrics are read afresh on each call: the same items (by id, with the
  // same attributes and metric names), not the same numbers.
  it('StreamContainerStats and StreamPodSandboxStats select what their lists select', async () => {
    const c = skiffd.client;
    const attrs = <T extends { attributes: unknown }>(xs: T[]) => xs.map((x) => x.attributes).sort((a, b) => ((a as { id: string }).id < (b as { id: string }).id ? -1 : 1));
    const ctrCases: unknown[] = [null, { id: ctrs.db }, { pod_sandbox_id: pods.web.id }, { label_selector: { role: 'server' } }];
    for (const filter of ctrCases) {
      const listed = (await c.runtime('ListContainerStats', { filter } as never)).stats;
      const streamed = (await readAll(c.runtimeStream('StreamContainerStats', { filter } as never))).flatMap((m) => m.container_stats);
      assert.ok(listed.length > 0, `ListContainerStats ${JSON.stringify(filter)}`);
      assert.deepEqual(attrs(streamed), attrs(listed), `StreamContainerStats ${JSON.stringify(filter)}`);
      const running = streamed.filter((s) => [ctrs.running, ctrs.db].includes(s.attributes!.id));
      assert.ok(running.every((s) => s.cpu && s.memory), 'a running container\'s stats carry numbers');
    }
    const podCases: unknown[] = [null, { id: pods.db.id.slice(0, 12) }, { label_selector: { app: 'web' } }];
    for (const filter of podCases) {
      const listed = (await c.runtime('ListPodSandboxStats', { filter } as never)).stats;
      const streamed = (await readAll(c.runtimeStream('StreamPodSandboxStats', { filter } as never))).flatMap((m) => m.pod_sandbox_stats);
      assert.ok(listed.length > 0, `ListPodSandboxStats ${JSON.stringify(filter)}`);
      assert.deepEqual(attrs(streamed), attrs(listed), `StreamPodSandboxStats ${JSON.stringify(filter)}`);
    }
  });

  it('StreamPodSandboxMetrics gives the ready pods ListPodSandboxMetrics gives, with the same metrics', async () => {
    const c = skiffd.client;
    const shape = (ms: { pod_sandbox_id: string; metrics: { name: string }[]; container_metrics: { container_id: string; metrics: { name: string }[] }[] }[]) =>
      ms
        .map((m) => ({
          pod: m.pod_sandbox_id,
          metrics: m.metrics.map((x) => x.name).sort(),
          containers: m.container_metrics.map((x) => ({ id: x.container_id, metrics: x.metrics.map((y) => y.name).sort() })).sort((a, b) => (a.id < b.id ? -1 : 1)),
        }))
        .sort((a, b) => (a.pod < b.pod ? -1 : 1));
    const listed = (await c.runtime('ListPodSandboxMetrics', {})).pod_metrics;
    const streamed = (await readAll(c.runtimeStream('StreamPodSandboxMetrics', {}))).flatMap((m) => m.pod_sandbox_metrics);
    assert.deepEqual(new Set(listed.map((m) => m.pod_sandbox_id)), new Set([pods.web.id, pods.db.id]));
    assert.deepEqual(shape(streamed), shape(listed));
  });

  it('a filter naming an unknown id: an empty list, and a stream that ends with no message', async () => {
    const c = skiffd.client;
    const none = 'f'.repeat(64);
    assert.deepEqual(await listPods({ id: none }), []);
    assert.equal((await readAll(c.runtimeStream('StreamPodSandboxes', { filter: { id: none } }))).length, 0);
    assert.deepEqual(await listCtrs({ pod_sandbox_id: none }), []);
    assert.equal((await readAll(c.runtimeStream('StreamContainers', { filter: { pod_sandbox_id: none } }))).length, 0);
    assert.equal((await readAll(c.runtimeStream('StreamContainers', { filter: { id: none } }))).length, 0);
    assert.deepEqual((await c.runtime('ListContainerStats', { filter: { id: none } })).stats, []);
    assert.equal((await readAll(c.runtimeStream('StreamContainerStats', { filter: { id: none } }))).length, 0);
    assert.deepEqual((await c.runtime('ListPodSandboxStats', { filter: { id: none } })).stats, []);
    assert.equal((await readAll(c.runtimeStream('StreamPodSandboxStats', { filter: { id: none } }))).length, 0);
    assert.deepEqual((await c.image('ListImages', { filter: { image: { image: 'nosuch:v1' } } })).images, []);
    assert.equal((await readAll(c.imageStream('StreamImages', { filter: { image: { image: 'nosuch:v1' } } }))).length, 0);
  });
});
