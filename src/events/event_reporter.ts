// Isolation findings on their way to the API server: each (pod, container, reason) once,
// through a bounded queue, at a steady rate, one request at a time. report() only queues,
// so no CRI call ever waits on (or fails with) the API server; when it is down, each
// event that fails is logged and dropped and the next waits longer (exponential backoff).
import type { Logger } from '../log';

export interface PodRef {
  name: string;
  namespace: string;
  uid: string;
}

export interface PodEvent {
  pod: PodRef;
  container: string;
  reason: string;
  message: string;
}

/** Delivers one event (to the API server); rejects when it could not. */
export type EventSink = (e: PodEvent) => Promise<void>;

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms).unref()) };

/** Limits, as kubelet's event recorder has them (eventRecordQPS 5, eventBurst 10). */
export const EVENT_LIMITS = {
  /** Events waiting to be sent; more are dropped (and counted). */
  queue: 256,
  perSecond: 5,
  burst: 10,
  /** Findings remembered as reported; the oldest are forgotten past it. */
  remembered: 10_000,
  backoffMs: { first: 1_000, max: 300_000 },
};

export class EventReporter {
  private readonly queue: PodEvent[] = [];
  /** Keys of what was reported or is queued, oldest first (a Map keeps insertion order). */
  private readonly reported = new Map<string, string>();
  private tokens: number;
  private lastRefill: number;
  private backoffMs = 0;
  private pumping = false;
  private closed = false;
  /** Counted between two log lines about them, so a flood logs once. */
  private overflowed = 0;
  readonly counts = { sent: 0, failed: 0, dropped: 0 };

  constructor(
    private readonly sink: EventSink,
    private readonly log: Logger,
    private readonly limits = EVENT_LIMITS,
    private readonly clock: Clock = realClock,
  ) {
    this.tokens = limits.burst;
    this.lastRefill = clock.now();
  }

  /** Queue the event unless this finding was reported for this pod's container already or
   * the queue is full; never throws, never waits. */
  report(e: PodEvent): boolean {
    const key = `${e.pod.uid}\0${e.container}\0${e.reason}`;
    if (this.closed || this.reported.has(key)) return false;
    if (this.queue.length >= this.limits.queue) {
      this.counts.dropped++;
      if (this.overflowed++ === 0) this.log.warn('kubernetes events: queue full, dropping events', { queue: this.limits.queue });
      return false;
    }
    this.reported.set(key, e.pod.uid);
    if (this.reported.size > this.limits.remembered) this.reported.delete(this.reported.keys().next().value!);
    this.queue.push(e);
    if (!this.pumping) void this.pump();
    return true;
  }

  /** Forget a removed pod's findings (a new pod with its uid cannot come, but its memory can go). */
  forgetPod(uid: string): void {
    for (const [key, podUid] of this.reported) if (podUid === uid) this.reported.delete(key);
  }

  /** Stop sending; what is queued is dropped. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
  }

  /** Resolves once the queue is empty and nothing is in flight (tests). */
  async idle(): Promise<void> {
    while (this.pumping) await new Promise((r) => setImmediate(r));
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length && !this.closed) {
        await this.takeToken();
        if (this.backoffMs) await this.clock.sleep(this.backoffMs);
        const e = this.queue.shift();
        if (!e || this.closed) break;
        try {
          await this.sink(e);
          this.counts.sent++;
          this.backoffMs = 0;
        } catch (err) {
          this.counts.failed++;
          // Reported again if the container starts again: it was never seen.
          this.reported.delete(`${e.pod.uid}\0${e.container}\0${e.reason}`);
          this.backoffMs = Math.min(this.backoffMs ? this.backoffMs * 2 : this.limits.backoffMs.first, this.limits.backoffMs.max);
          this.log.warn('kubernetes event not sent, dropped', { pod: `${e.pod.namespace}/${e.pod.name}`, reason: e.reason, error: (err as Error).message, retryInMs: this.backoffMs });
        }
      }
      if (this.overflowed) this.log.warn('kubernetes events dropped while the queue was full', { dropped: this.overflowed });
      this.overflowed = 0;
    } finally {
      this.pumping = false;
    }
  }

  /** A token bucket: `burst` events at once, then `perSecond`. */
  private async takeToken(): Promise<void> {
    for (;;) {
      const now = this.clock.now();
      this.tokens = Math.min(this.limits.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.limits.perSecond);
      this.lastRefill = now;
      if (this.tokens >= 1) {
        this.tokens--;
        return;
      }
      await this.clock.sleep(Math.ceil(((1 - this.tokens) / this.limits.perSecond) * 1000));
    }
  }
}
