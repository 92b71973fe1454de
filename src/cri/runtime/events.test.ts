// GetContainerEvents' fan-out: each subscriber gets every event in order, one that
// does not read is ended with RESOURCE_EXHAUSTED instead of growing skiffd's memory,
// and neither stalls the publisher or the other subscribers.
import assert from 'node:assert/strict';
import type { ContainerRecord, ContainerService } from '../../container/container_service';
import { GrpcCode, grpcCode } from '../../errors';
import type { PodRecord } from '../../sandbox/pod_registry';
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { LifecycleChange } from '../../store/record_set';
import type { ContainerEventResponse } from '../gen/cri';
import type { Reply, StreamContext } from '../server';
import { ContainerEvents, MAX_QUEUED_EVENTS } from './events';

function fakes() {
  const pod = { id: 'p1', state: 'ready', config: { metadata: { name: 'p', namespace: 'n', uid: 'u', attempt: 0 }, labels: {}, annotations: {} }, createdAt: 1, ips: [] } as unknown as PodRecord;
  const pods = { get: (id: string) => (id === 'p1' ? pod : undefined), onChange: () => () => {} };
  let listener: ((c: LifecycleChange, r: ContainerRecord) => void) | undefined;
  const containers = {
    onChange: (l: typeof listener) => (listener = l),
    inPod: (_podId: string) => [] as ContainerRecord[],
  };
  const ctr = (id: string) => ({ id, podId: 'p1', state: 'created', config: { metadata: { name: id, attempt: 0 }, labels: {}, annotations: {}, image: { image: 'x' } }, imageId: 'sha256:x', imageRef: 'x', user: { uid: 0, gid: 0, additionalGids: [] }, resources: null }) as unknown as ContainerRecord;
  return {
    events: new ContainerEvents(pods as unknown as SandboxService, containers as unknown as ContainerService),
    fire: (id: string, change: LifecycleChange) => listener!(change, ctr(id)),
  };
}

/** A stream context whose client reads only when told to. */
function client() {
  const abort = new AbortController();
  const got: Reply<ContainerEventResponse>[] = [];
  let reading = true;
  let drain: (() => void) | null = null;
  const ctx: StreamContext<ContainerEventResponse> = {
    method: 'GetContainerEvents',
    pkg: 'runtime.v1',
    signal: abort.signal,
    write: (m) => {
      got.push(m);
      return reading;
    },
    drained: () => new Promise((r) => (drain = r)),
  };
  return {
    ctx,
    got,
    cancel: () => abort.abort(),
    stall: () => (reading = false),
    resume: () => {
      reading = true;
      drain?.();
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('GetContainerEvents fan-out', () => {
  it('sends every event in order to each subscriber until it cancels', async () => {
    const { events, fire } = fakes();
    const a = client();
    const b = client();
    const runA = events.handler()({}, a.ctx);
    const runB = events.handler()({}, b.ctx);
    fire('c1', 'created');
    fire('c1', 'started');
    await tick();
    b.stall(); // b's transport is full: it waits for drain, a goes on
    fire('c1', 'stopped');
    fire('c1', 'deleted');
    await tick();
    assert.deepEqual(a.got.map((e) => e.container_event_type), [0, 1, 2, 3]);
    assert.deepEqual(b.got.map((e) => e.container_event_type), [0, 1, 2]);
    b.resume();
    await tick();
    assert.deepEqual(b.got.map((e) => e.container_event_type), [0, 1, 2, 3]);
    assert.equal(a.got[0].pod_sandbox_status?.id, 'p1');
    a.cancel();
    b.cancel();
    await Promise.all([runA, runB]);
    assert.equal(events.subscriberCount, 0);
  });

  it('ends a subscriber that falls too far behind with RESOURCE_EXHAUSTED', async () => {
    const { events, fire } = fakes();
    const slow = client();
    const fast = client();
    const runSlow = events.handler()({}, slow.ctx);
    const runFast = events.handler()({}, fast.ctx);
    slow.stall();
    fire('c0', 'created');
    await tick();
    // In bursts, as a busy node makes them: the fast client keeps up between them.
    for (let i = 1; i <= MAX_QUEUED_EVENTS + 1; i++) {
      fire(`c${i}`, 'created');
      if (i % 1000 === 0) await tick();
    }
    await tick();
    slow.resume();
    await assert.rejects(runSlow, (e) => grpcCode(e) === GrpcCode.RESOURCE_EXHAUSTED);
    for (let i = 0; i < 5 && fast.got.length < MAX_QUEUED_EVENTS + 2; i++) await tick();
    assert.equal(fast.got.length, MAX_QUEUED_EVENTS + 2, 'the other subscriber got them all');
    fast.cancel();
    await runFast;
    assert.equal(events.subscriberCount, 0);
  });
});
