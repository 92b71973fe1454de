// GetContainerEvents: the stream kubelet's Evented PLEG reads. Every container (and,
// as containerd does, every pod sandbox, under its own id) created, started, stopped
// or deleted is sent to each subscriber with the pod's status and its containers'.
// Each subscriber has a queue of its own: a client that does not read stalls only
// itself, and one that falls too far behind is ended with RESOURCE_EXHAUSTED (kubelet
// then subscribes again and relists), so skiffd's memory stays bounded.
import type { ContainerRecord, ContainerService } from '../../container/container_service';
import { ResourceExhausted } from '../../errors';
import type { PodRecord } from '../../sandbox/pod_registry';
import type { SandboxService } from '../../sandbox/sandbox_service';
import { LifecycleChange, nowNs } from '../../store/record_set';
import { ContainerEventResponse, ContainerEventType, GetEventsRequest } from '../gen/cri';
import type { Reply, StreamContext } from '../server';
import { toContainerStatus, toPodSandboxStatus } from './convert';

/** Events a subscriber may have waiting before it is dropped. */
export const MAX_QUEUED_EVENTS = 10_000;

const EVENT_TYPE: Record<LifecycleChange, ContainerEventType> = {
  created: ContainerEventType.CONTAINER_CREATED_EVENT,
  started: ContainerEventType.CONTAINER_STARTED_EVENT,
  stopped: ContainerEventType.CONTAINER_STOPPED_EVENT,
  deleted: ContainerEventType.CONTAINER_DELETED_EVENT,
};

type Event = Reply<ContainerEventResponse>;

class Subscriber {
  private readonly queue: Event[] = [];
  private wake: (() => void) | null = null;
  private failure: Error | null = null;

  push(e: Event): void {
    if (this.failure) return;
    if (this.queue.length >= MAX_QUEUED_EVENTS) {
      this.failure = new ResourceExhausted(`GetContainerEvents: the client fell ${MAX_QUEUED_EVENTS} events behind; subscribe again`);
      this.queue.length = 0;
    } else {
      this.queue.push(e);
    }
    this.wake?.();
  }

  /** Send queued events until the client cancels; throws when it fell too far behind. */
  async pump(ctx: StreamContext<ContainerEventResponse>): Promise<void> {
    const cancelled = new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    while (!ctx.signal.aborted) {
      if (this.failure) throw this.failure;
      const e = this.queue.shift();
      if (!e) {
        await Promise.race([new Promise<void>((resolve) => (this.wake = resolve)), cancelled]);
        this.wake = null;
        continue;
      }
      if (!ctx.write(e)) await Promise.race([ctx.drained(), cancelled]);
    }
  }
}

export class ContainerEvents {
  private readonly subscribers = new Set<Subscriber>();

  constructor(
    private readonly pods: SandboxService,
    private readonly containers: ContainerService,
  ) {
    containers.onChange((change, r) => this.publish(r.id, change, r.podId, r));
    pods.onChange((change, r) => this.publish(r.id, change, r.id, undefined, r));
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  private publish(id: string, change: LifecycleChange, podId: string, ctr?: ContainerRecord, podRecord?: PodRecord): void {
    if (this.subscribers.size === 0) return;
    const pod = this.pods.get(podId) ?? podRecord;
    const statuses = this.containers.inPod(podId);
    // A deleted container is no longer listed; a stopped one is, with its new state.
    if (ctr && change !== 'deleted' && !statuses.some((c) => c.id === ctr.id)) statuses.push(ctr);
    const event: Event = {
      container_id: id,
      container_event_type: EVENT_TYPE[change],
      created_at: nowNs(),
      pod_sandbox_status: pod ? toPodSandboxStatus(pod) : null,
      containers_statuses: statuses.map(toContainerStatus),
    };
    for (const s of this.subscribers) s.push(event);
  }

  handler() {
    return async (_req: GetEventsRequest, ctx: StreamContext<ContainerEventResponse>): Promise<void> => {
      const s = new Subscriber();
      this.subscribers.add(s);
      try {
        await s.pump(ctx);
      } finally {
        this.subscribers.delete(s);
      }
    };
  }
}
