// The Stream* lists with thousands of items, through the real CriServer and a real gRPC
// client on a unix socket, over in-memory records: chunks within their bounds, the same
// items as the unary list, a slow reader, a client that cancels, items too big for one
// default-sized gRPC message.
import assert from 'node:assert/strict';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import type { ContainerRecord } from '../container/container_service';
import type { ImageRecord } from '../image/image_service';
import { Logger } from '../log';
import type { PodRecord } from '../sandbox/pod_registry';
import type { CgroupStats } from '../shim/client';
import type { ContainerSample } from '../stats/container_stats';
import type { PodSample } from '../stats/pod_stats';
import { CriClient, readAll } from './client';
import type { ListPodSandboxResponse, PodSandbox } from './gen/cri';
import { ContainerState, PodSandboxState } from './gen/cri';
import { listImages, streamImages } from './image/image_list';
import { ChunkBounds, STREAM_CHUNK_BOUNDS, chunks } from './list_stream';
import { ENCODED, codec, serviceDefinition } from './proto';
import { containerLists } from './runtime/container_list';
import { listContainerStats, streamContainerStats } from './runtime/container_stats';
import { podSandboxLists } from './runtime/sandbox_list';
import { listPodSandboxMetrics, streamPodSandboxMetrics } from './runtime/sandbox_metrics';
import { listPodSandboxStats, streamPodSandboxStats } from './runtime/sandbox_stats';
import { CriServer, StreamContext } from './server';

const PODS = 3000;
const CONTAINERS = 6000;
const IMAGES = 2500;
/** Small enough that a few thousand items make dozens of chunks. */
const SMALL: ChunkBounds = { maxBytes: 48 * 1024, maxItems: 250 };

const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const STATES = ['created', 'running', 'exited'] as const;

function podRecord(i: number): PodRecord {
  return {
    id: hex(`pod${i}`),
    config: {
      metadata: { name: `pod${i}`, uid: `uid-${i}`, namespace: `ns${i % 7}`, attempt: i % 2 },
      labels: { app: `app${i % 5}`, tier: i % 2 ? 'web' : 'db', 'io.kubernetes.pod.name': `pod${i}` },
      annotations: { 'kubernetes.io/config.seen': `2026-12-07T00:00:${i % 60}Z` },
    },
    runtimeHandler: i % 11 ? '' : 'kata',
    // Some share a creation time: the order falls back to the id.
    createdAt: 1_700_000_000_000_000_000 + Math.floor(i / 3) * 1000,
    state: i % 4 ? 'ready' : 'notready',
  } as unknown as PodRecord;
}

function containerRecord(i: number, pods: PodRecord[]): ContainerRecord {
  const pod = pods[i % pods.length];
  return {
    id: hex(`ctr${i}`),
    podId: pod.id,
    config: {
      metadata: { name: `c${i}`, attempt: 0 },
      image: { image: 'docker.io/library/busybox:latest', annotations: {} },
      labels: { 'io.kubernetes.container.name': `c${i}`, app: `app${i % 5}` },
      annotations: { 'io.kubernetes.container.hash': `${i}` },
    },
    imageId: `sha256:${hex('img')}`,
    imageRef: `docker.io/library/busybox@sha256:${hex('img')}`,
    state: STATES[i % 3],
    createdAt: 1_700_000_000_000_000_000 + (CONTAINERS - i) * 10,
    startedAt: 1_700_000_000_000_000_000 + (CONTAINERS - i) * 10 + 5,
  } as unknown as ContainerRecord;
}

function imageRecord(i: number): ImageRecord {
  return {
    id: `sha256:${hex(`image${i}`)}`,
    repoTags: [`registry.test/app${i}:v1`, `registry.test/app${i}:latest`],
    repoDigests: [`registry.test/app${i}@sha256:${hex(`manifest${i}`)}`],
    size: 1_000_000 + i,
    config: { user: i % 2 ? '1000' : 'app' },
  } as unknown as ImageRecord;
}

/** In-memory stand-ins for the services the list handlers read. */
function fakeNode(pods: PodRecord[], containers: ContainerRecord[], images: ImageRecord[]) {
  const byId = <R extends { id: string }>(list: R[]) => new Map(list.map((r) => [r.id, r]));
  const podMap = byId(pods);
  const ctrMap = byId(containers);
  const seq = (id: string) => parseInt(id.slice(0, 8), 16);
  const cgroupReading = (n: number): CgroupStats => ({
    timestamp: 1,
    cpu: { usageNs: n, userNs: 0, systemNs: 0 },
    memory: { usageBytes: n, workingSetBytes: n, limitBytes: null, rssBytes: 0, pageFaults: 0, majorPageFaults: 0, cacheBytes: 0, oomKills: 0 },
    pids: { current: 1, limit: null },
    swap: null,
  });
  const containerSample = (r: ContainerRecord): ContainerSample => ({ container: r, writableLayer: null, cgroup: cgroupReading(seq(r.id)), cpuNanoCores: null });
  return {
    // The records never change here: one generation.
    pods: { list: () => [...podMap.values()], get: (id: string) => podMap.get(id), generation: () => 0 },
    containers: { list: () => [...ctrMap.values()], get: (id: string) => ctrMap.get(id), generation: () => 0, inPod: (podId: string) => [...ctrMap.values()].filter((c) => c.podId === podId) },
    images: { list: () => images, find: (ref: string) => images.find((r) => r.id === ref || r.repoTags.includes(ref)), keptIds: () => new Set<string>(), generation: 0 },
    // Deterministic numbers and times: a list and its stream must match field for field.
    containerStats: { sample: async (r: ContainerRecord) => containerSample(r) },
    podStats: {
      sample: async (p: PodRecord, cs: ContainerRecord[]): Promise<PodSample> => ({
        pod: p,
        timestamp: 1,
        cgroup: { ...cgroupReading(seq(p.id)), psi: { cpu: { some: { avg10: 0, avg60: 0, avg300: 0, totalUs: seq(p.id) * 1e6 }, full: null }, memory: null, io: null } },
        network: null,
        containers: cs.map(containerSample),
      }),
    },
    devices: { name: async () => '' },
  };
}

type Node = ReturnType<typeof fakeNode>;

/** Observes what the server's stream handlers write: messages, refused writes, the end. */
class Observed {
  writes = 0;
  refused = 0;
  ended = false;

  wrap<Q, S>(fn: (req: Q, ctx: StreamContext<S>) => Promise<void>) {
    return async (req: Q, ctx: StreamContext<S>): Promise<void> => {
      this.writes = this.refused = 0;
      this.ended = false;
      try {
        await fn(req, {
          method: ctx.method,
          pkg: ctx.pkg,
          signal: ctx.signal,
          drained: () => ctx.drained(),
          write: (m) => {
            this.writes++;
            const ok = ctx.write(m);
            if (!ok) this.refused++;
            return ok;
          },
        });
      } finally {
        this.ended = true;
      }
    };
  }
}

async function startServer(node: Node, bounds: ChunkBounds, observed: Observed) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-list-stream-'));
  const socket = path.join(dir, 'cri.sock');
  const pods = podSandboxLists(node.pods, bounds);
  const ctrs = containerLists(node.containers, bounds);
  const server = new CriServer(
    {
      runtime: {
        ListPodSandbox: pods.ListPodSandbox,
        StreamPodSandboxes: pods.StreamPodSandboxes,
        ListContainers: ctrs.ListContainers,
        StreamContainers: observed.wrap(ctrs.StreamContainers),
        ListContainerStats: listContainerStats(node.containers, node.containerStats),
        StreamContainerStats: streamContainerStats(node.containers, node.containerStats, bounds),
        ListPodSandboxStats: listPodSandboxStats(node.pods, node.containers, node.podStats),
        StreamPodSandboxStats: streamPodSandboxStats(node.pods, node.containers, node.podStats, bounds),
        ListPodSandboxMetrics: listPodSandboxMetrics(node.pods, node.containers, node.podStats, node.devices),
        StreamPodSandboxMetrics: streamPodSandboxMetrics(node.pods, node.containers, node.podStats, node.devices, bounds),
      },
      image: { ListImages: listImages(node.images, ['skiff'], () => 0), StreamImages: streamImages(node.images, ['skiff'], bounds) },
    },
    new Logger('error'),
  );
  await server.listen(socket, 0o600);
  return {
    socket,
    async stop() {
      await server.close(100);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A client of one service whose decoder notes each reply's size on the wire, with
 * grpc's default 4 MiB receive limit (kubelet raises its own to 16 MiB).
 */
function measuringClient(socket: string, service: 'RuntimeService' | 'ImageService') {
  const sizes: number[] = [];
  const def = serviceDefinition('runtime.v1', service);
  const measured: grpc.ServiceDefinition = Object.fromEntries(
    Object.entries(def).map(([name, m]) => [
      name,
      {
        ...m,
        responseDeserialize: (b: Buffer) => {
          sizes.push(b.length);
          return m.responseDeserialize(b);
        },
      },
    ]),
  );
  const Client = grpc.makeGenericClientConstructor(measured, service);
  const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure());
  const call = <T>(method: string, req: unknown): grpc.ClientReadableStream<T> =>
    (client as unknown as Record<string, (r: unknown) => grpc.ClientReadableStream<T>>)[method].call(client, req);
  const unary = <T>(method: string, req: unknown): Promise<T> =>
    new Promise((resolve, reject) =>
      (client as unknown as Record<string, (r: unknown, cb: (e: Error | null, res: T) => void) => void>)[method].call(client, req, (e: Error | null, res: T) =>
        e ? reject(e) : resolve(res),
      ),
    );
  return { sizes, call, unary, close: () => client.close() };
}

interface Pair {
  service: 'RuntimeService' | 'ImageService';
  list: string;
  listField: string;
  stream: string;
  streamField: string;
  /** What identifies an item (duplicates and losses are counted by it). */
  id: (item: Record<string, unknown>) => string;
}

const PAIRS: Record<string, Pair> = {
  pods: { service: 'RuntimeService', list: 'ListPodSandbox', listField: 'items', stream: 'StreamPodSandboxes', streamField: 'pod_sandboxes', id: (i) => i.id as string },
  containers: { service: 'RuntimeService', list: 'ListContainers', listField: 'containers', stream: 'StreamContainers', streamField: 'containers', id: (i) => i.id as string },
  containerStats: {
    service: 'RuntimeService',
    list: 'ListContainerStats',
    listField: 'stats',
    stream: 'StreamContainerStats',
    streamField: 'container_stats',
    id: (i) => (i.attributes as { id: string }).id,
  },
  podStats: {
    service: 'RuntimeService',
    list: 'ListPodSandboxStats',
    listField: 'stats',
    stream: 'StreamPodSandboxStats',
    streamField: 'pod_sandbox_stats',
    id: (i) => (i.attributes as { id: string }).id,
  },
  metrics: {
    service: 'RuntimeService',
    list: 'ListPodSandboxMetrics',
    listField: 'pod_metrics',
    stream: 'StreamPodSandboxMetrics',
    streamField: 'pod_sandbox_metrics',
    id: (i) => i.pod_sandbox_id as string,
  },
  images: { service: 'ImageService', list: 'ListImages', listField: 'images', stream: 'StreamImages', streamField: 'images', id: (i) => i.id as string },
};

describe('CRI list streams with thousands of items (real CriServer and gRPC client, in-memory records)', function () {
  this.timeout(180_000);
  const pods = Array.from({ length: PODS }, (_, i) => podRecord(i));
  const containers = Array.from({ length: CONTAINERS }, (_, i) => containerRecord(i, pods));
  const images = Array.from({ length: IMAGES }, (_, i) => imageRecord(i));
  const node = fakeNode(pods, containers, images);
  const observed = new Observed();
  let server: Awaited<ReturnType<typeof startServer>>;
  let rt: ReturnType<typeof measuringClient>;
  let img: ReturnType<typeof measuringClient>;
  /** The unary list reads with a client that takes big replies. */
  let big: CriClient;

  before(async () => {
    server = await startServer(node, SMALL, observed);
    rt = measuringClient(server.socket, 'RuntimeService');
    img = measuringClient(server.socket, 'ImageService');
    big = new CriClient(server.socket);
  });
  after(async () => {
    rt?.close();
    img?.close();
    big?.close();
    await server?.stop();
  });

  /** The stream's items, checked chunk by chunk against the bounds, and the unary list's. */
  async function both(p: Pair, req: Record<string, unknown>) {
    const client = p.service === 'RuntimeService' ? rt : img;
    client.sizes.length = 0;
    const msgs = await readAll(client.call<Record<string, Record<string, unknown>[]>>(p.stream, req));
    const sizes = client.sizes.slice();
    assert.equal(sizes.length, msgs.length);
    for (const [i, m] of msgs.entries()) {
      const n = m[p.streamField].length;
      assert.ok(n >= 1 && n <= SMALL.maxItems, `${p.stream} chunk ${i} has ${n} items`);
      assert.ok(sizes[i] <= SMALL.maxBytes, `${p.stream} chunk ${i} is ${sizes[i]} bytes, over ${SMALL.maxBytes}`);
    }
    const streamed = msgs.flatMap((m) => m[p.streamField]);
    const unary = (p.service === 'RuntimeService' ? await big.runtime(p.list as 'ListPodSandbox', req) : await big.image(p.list as 'ListImages', req)) as unknown as Record<
      string,
      Record<string, unknown>[]
    >;
    return { streamed, listed: unary[p.listField], chunks: msgs.length };
  }

  /** Same items, same order, each once, `want` of them. */
  function assertSame(p: Pair, r: Awaited<ReturnType<typeof both>>, want: number) {
    assert.equal(r.streamed.length, want, `${p.stream}: item count`);
    assert.equal(new Set(r.streamed.map(p.id)).size, want, `${p.stream}: an item came twice`);
    assert.deepEqual(r.streamed, r.listed, `${p.stream} differs from ${p.list}`);
  }

  it('StreamPodSandboxes: every pod once, in ListPodSandbox order, in chunks within the bounds', async () => {
    const r = await both(PAIRS.pods, {});
    assertSame(PAIRS.pods, r, PODS);
    assert.ok(r.chunks > PODS / SMALL.maxItems, `only ${r.chunks} chunks`);
    const created = r.streamed.map((p) => p.created_at as number);
    assert.deepEqual(created, [...created].sort((a, b) => a - b), 'oldest first');
  });

  it('StreamPodSandboxes: filters by state, labels and id prefix as ListPodSandbox does', async () => {
    const p = PAIRS.pods;
    assertSame(p, await both(p, { filter: { state: { state: PodSandboxState.SANDBOX_NOTREADY } } }), pods.filter((r) => r.state === 'notready').length);
    assertSame(p, await both(p, { filter: { label_selector: { app: 'app3', tier: 'web' } } }), pods.filter((_, i) => i % 5 === 3 && i % 2 === 1).length);
    const one = pods[1234];
    assertSame(p, await both(p, { filter: { id: one.id.slice(0, 12) } }), 1);
    assertSame(p, await both(p, { filter: { id: one.id, state: { state: PodSandboxState.SANDBOX_NOTREADY } } }), 0);
  });

  it('StreamContainers: every container once, in ListContainers order, filters included', async () => {
    const p = PAIRS.containers;
    const all = await both(p, {});
    assertSame(p, all, CONTAINERS);
    assert.ok(all.chunks > CONTAINERS / SMALL.maxItems);
    assertSame(p, await both(p, { filter: { state: { state: ContainerState.CONTAINER_RUNNING } } }), CONTAINERS / 3);
    assertSame(p, await both(p, { filter: { pod_sandbox_id: pods[7].id } }), containers.filter((c) => c.podId === pods[7].id).length);
    assertSame(p, await both(p, { filter: { label_selector: { app: 'app1' } } }), CONTAINERS / 5);
    assertSame(p, await both(p, { filter: { pod_sandbox_id: pods[7].id, state: { state: ContainerState.CONTAINER_EXITED }, label_selector: {} } }), containers.filter((c) => c.podId === pods[7].id && c.state === 'exited').length);
  });

  it('StreamContainerStats, StreamPodSandboxStats, StreamPodSandboxMetrics and StreamImages answer what their lists answer', async () => {
    assertSame(PAIRS.containerStats, await both(PAIRS.containerStats, {}), CONTAINERS);
    assertSame(PAIRS.containerStats, await both(PAIRS.containerStats, { filter: { pod_sandbox_id: pods[3].id } }), CONTAINERS / PODS);
    assertSame(PAIRS.podStats, await both(PAIRS.podStats, {}), PODS);
    assertSame(PAIRS.podStats, await both(PAIRS.podStats, { filter: { label_selector: { tier: 'db' } } }), PODS / 2);
    assertSame(PAIRS.metrics, await both(PAIRS.metrics, {}), pods.filter((r) => r.state === 'ready').length);
    assertSame(PAIRS.images, await both(PAIRS.images, {}), IMAGES);
    assertSame(PAIRS.images, await both(PAIRS.images, { filter: { image: { image: 'registry.test/app42:latest' } } }), 1);
  });

  it('a filter naming an unknown id or image: an empty list, and a stream that ends with no message', async () => {
    for (const [p, req] of [
      [PAIRS.pods, { filter: { id: 'f'.repeat(64) } }],
      [PAIRS.containers, { filter: { id: 'nosuchid' } }],
      [PAIRS.containers, { filter: { pod_sandbox_id: 'nosuchpod' } }],
      [PAIRS.containerStats, { filter: { id: 'nosuchid' } }],
      [PAIRS.podStats, { filter: { id: 'nosuchid' } }],
      [PAIRS.images, { filter: { image: { image: 'registry.test/nosuch:v1' } } }],
    ] as const) {
      const r = await both(p, req);
      assert.equal(r.chunks, 0, `${p.stream} sent ${r.chunks} messages`);
      assert.deepEqual(r.listed, []);
    }
  });

  it('a client that reads slowly holds the server back (writes wait for drain) and still gets every item once', async () => {
    const stream = rt.call<{ containers: { id: string }[] }>('StreamContainers', {});
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (m: { containers: { id: string }[] }) => {
        got.push(...m.containers.map((c) => c.id));
        stream.pause();
        setTimeout(() => stream.resume(), 10);
      });
      stream.on('error', reject);
      stream.on('end', resolve);
    });
    assert.equal(got.length, CONTAINERS);
    assert.equal(new Set(got).size, CONTAINERS);
    assert.deepEqual(new Set(got), new Set(containers.map((c) => c.id)));
    assert.ok(observed.refused > 0, 'the server never had to wait for the client');
    assert.ok(observed.ended);
  });

  it('a client that cancels after one chunk: the server stops writing and ends its handler', async () => {
    const total = (await both(PAIRS.containers, {})).chunks;
    const stream = rt.call<{ containers: unknown[] }>('StreamContainers', {});
    const failed = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    await new Promise<void>((resolve) =>
      stream.once('data', () => {
        stream.pause();
        stream.cancel();
        resolve();
      }),
    );
    assert.equal((await failed).code, grpc.status.CANCELLED);
    for (let i = 0; i < 600 && !observed.ended; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(observed.ended, 'the stream handler is still running after the client cancelled');
    // What flow control let through before the cancel, not all of it.
    assert.ok(observed.writes < total / 2, `the server wrote ${observed.writes} of ${total} chunks after the cancel`);
    // The server still answers.
    assertSame(PAIRS.containers, await both(PAIRS.containers, { filter: { id: containers[5].id } }), 1);
  });
});

describe('CRI list streams with items too big for one default-sized gRPC message', function () {
  this.timeout(120_000);
  // 40 pods of ~200 KiB each: an 8 MiB ListPodSandbox reply.
  const pods = Array.from({ length: 40 }, (_, i) => {
    const r = podRecord(i);
    r.config.annotations = { blob: String(i % 10).repeat(200 * 1024) };
    return r;
  });
  const node = fakeNode(pods, [], []);
  let server: Awaited<ReturnType<typeof startServer>>;
  let rt: ReturnType<typeof measuringClient>;

  before(async () => {
    server = await startServer(node, STREAM_CHUNK_BOUNDS, new Observed());
    rt = measuringClient(server.socket, 'RuntimeService');
  });
  after(async () => {
    rt?.close();
    await server?.stop();
  });

  it('ListPodSandbox overflows a 4 MiB client; StreamPodSandboxes reaches it in chunks of at most 1 MiB', async () => {
    await assert.rejects(rt.unary('ListPodSandbox', {}), (e: grpc.ServiceError) => e.code === grpc.status.RESOURCE_EXHAUSTED);
    rt.sizes.length = 0;
    const msgs = await readAll(rt.call<{ pod_sandboxes: PodSandbox[] }>('StreamPodSandboxes', {}));
    assert.ok(msgs.length >= 8, `${msgs.length} chunks`);
    for (const n of rt.sizes) assert.ok(n <= STREAM_CHUNK_BOUNDS.maxBytes, `a ${n}-byte chunk`);
    const got = msgs.flatMap((m) => m.pod_sandboxes);
    assert.equal(got.length, pods.length);
    assert.deepEqual(new Set(got.map((p) => p.id)), new Set(pods.map((p) => p.id)));
    assert.ok(got.every((p) => p.annotations.blob.length === 200 * 1024));
  });
});

describe('chunks (a list reply split within byte and item bounds)', () => {
  const podCodec = codec<PodSandbox>('PodSandbox');
  const listCodec = codec<ListPodSandboxResponse>('ListPodSandboxResponse');
  const item = (name: string, pad: number) => podCodec.encode({ id: name, metadata: { name, uid: '', namespace: '', attempt: 0 }, annotations: { pad: 'x'.repeat(pad) } });
  const names = (bufs: Buffer[]) => bufs.map((b) => listCodec.decode(b).items.map((p) => p.id));

  it('sends nothing for no items', () => {
    assert.equal([...chunks(1, [], { maxBytes: 100, maxItems: 10 })].length, 0);
  });

  it('cuts before the item that would cross a bound, and gives an item over maxBytes a reply of its own', () => {
    const items = [item('a', 10), item('b', 10), item('c', 500), item('d', 10), item('e', 10), item('f', 10)];
    const out = [...chunks(1, items, { maxBytes: 100, maxItems: 2 })].map((e) => e[ENCODED]);
    assert.deepEqual(names(out), [['a', 'b'], ['c'], ['d', 'e'], ['f']]);
    for (const b of out) if (!listCodec.decode(b).items.some((p) => p.id === 'c')) assert.ok(b.length <= 100);
    // Each reply is exactly what the codec would make of its items.
    assert.deepEqual(out[0], listCodec.encode({ items: [items[0], items[1]].map((b) => podCodec.decode(b)) }));
  });

  it('counts the tag and the length prefix of every item against maxBytes', () => {
    const a = item('a', 150); // over 127 bytes: a 2-byte length prefix
    const limit = 2 * (1 + 2 + a.length);
    assert.equal([...chunks(1, [a, a], { maxBytes: limit, maxItems: 10 })].length, 1);
    assert.equal([...chunks(1, [a, a], { maxBytes: limit - 1, maxItems: 10 })].length, 2);
  });
});
