import assert from 'node:assert/strict';
import { Writable } from 'stream';
import { Logger } from '../log';
import { Clock, EVENT_LIMITS, EventReporter, PodEvent } from './event_reporter';

/** A clock whose sleeps return at once and move time on, recording each. */
function fakeClock(): Clock & { sleeps: number[]; t: number } {
  const c = {
    t: 1_000_000,
    sleeps: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => {
      c.sleeps.push(ms);
      c.t += ms;
    },
  };
  return c;
}

function logger(): Logger & { lines: { level: string; msg: string; [k: string]: unknown }[] } {
  const lines: { level: string; msg: string }[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()));
      cb();
    },
  });
  return Object.assign(new Logger('debug', {}, out, false), { lines });
}

const event = (pod: string, reason = 'RootOnHost', container = 'app'): PodEvent => ({
  pod: { name: pod, namespace: 'default', uid: `uid-${pod}` },
  container,
  reason,
  message: `${container} in ${pod}: ${reason}`,
});

describe('kubernetes events: the reporter', () => {
  it('sends each finding of a pod once, in order', async () => {
    const sent: PodEvent[] = [];
    const r = new EventReporter(async (e) => void sent.push(e), logger(), EVENT_LIMITS, fakeClock());
    assert.equal(r.report(event('a')), true);
    assert.equal(r.report(event('a')), false, 'the same finding for the same container');
    assert.equal(r.report(event('a', 'HostPIDNamespace')), true);
    assert.equal(r.report(event('a', 'RootOnHost', 'sidecar')), true);
    assert.equal(r.report(event('b')), true);
    await r.idle();
    assert.deepEqual(sent.map((e) => `${e.pod.name}/${e.container}/${e.reason}`), ['a/app/RootOnHost', 'a/app/HostPIDNamespace', 'a/sidecar/RootOnHost', 'b/app/RootOnHost']);
    assert.equal(r.report(event('a')), false, 'still remembered after it was sent');
  });

  it('sends a burst at once and the rest at the steady rate', async () => {
    const clock = fakeClock();
    const times: number[] = [];
    const r = new EventReporter(async () => void times.push(clock.now()), logger(), { ...EVENT_LIMITS, burst: 3, perSecond: 2 }, clock);
    for (let i = 0; i < 7; i++) r.report(event(`p${i}`));
    await r.idle();
    const start = times[0];
    assert.deepEqual(times.map((t) => t - start), [0, 0, 0, 500, 1000, 1500, 2000]);
  });

  it('holds a bounded queue: past it events are dropped, counted and logged once', async () => {
    const log = logger();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const r = new EventReporter(() => gate, log, { ...EVENT_LIMITS, queue: 3 }, fakeClock());
    // Reported in one go: nothing has left the queue yet when it is full.
    const accepted = Array.from({ length: 10 }, (_, i) => r.report(event(`p${i}`)));
    assert.deepEqual(accepted, [true, true, true, false, false, false, false, false, false, false]);
    assert.equal(r.counts.dropped, 7);
    assert.equal(log.lines.filter((l) => /queue full/.test(l.msg)).length, 1);
    release();
    await r.idle();
    assert.equal(r.counts.sent, 3);
    assert.deepEqual(log.lines.filter((l) => /dropped while/.test(l.msg)).map((l) => l.dropped), [7]);
    assert.equal(r.report(event('p9')), true, 'a dropped finding was not remembered: a later start reports it');
  });

  it('drops what the API server refuses, logs it, and backs off doubling up to the ceiling; a success resets it', async () => {
    const clock = fakeClock();
    const log = logger();
    let down = true;
    const sent: string[] = [];
    const r = new EventReporter(
      async (e) => {
        if (down) throw new Error('connect ECONNREFUSED 127.0.0.1:6443');
        sent.push(e.pod.name);
      },
      log,
      { ...EVENT_LIMITS, burst: 100, perSecond: 100, backoffMs: { first: 1000, max: 4000 } },
      clock,
    );
    for (let i = 0; i < 5; i++) r.report(event(`p${i}`));
    await r.idle();
    assert.deepEqual(clock.sleeps, [1000, 2000, 4000, 4000], 'no wait before the first try; then 1 s, 2 s, 4 s, the ceiling');
    assert.equal(r.counts.failed, 5);
    const failures = log.lines.filter((l) => /not sent/.test(l.msg));
    assert.equal(failures.length, 5);
    assert.match(String(failures[0].error), /ECONNREFUSED/);
    assert.equal(failures[0].pod, 'default/p0');
    down = false;
    clock.sleeps.length = 0;
    assert.equal(r.report(event('p0')), true, 'a dropped finding is reported again when it comes again');
    r.report(event('p1'));
    await r.idle();
    assert.deepEqual(clock.sleeps, [4000], 'the next try still waits; after a success none does');
    assert.deepEqual(sent, ['p0', 'p1']);
  });

  it('never throws to the caller, even when the sink throws synchronously', async () => {
    const r = new EventReporter(
      () => {
        throw new Error('boom');
      },
      logger(),
      EVENT_LIMITS,
      fakeClock(),
    );
    assert.equal(r.report(event('a')), true);
    await r.idle();
    assert.equal(r.counts.failed, 1);
  });

  it('forgets a removed pod and sends nothing once closed', async () => {
    const sent: string[] = [];
    const r = new EventReporter(async (e) => void sent.push(e.pod.name), logger(), EVENT_LIMITS, fakeClock());
    r.report(event('a'));
    r.report(event('b'));
    await r.idle();
    r.forgetPod('uid-a');
    assert.equal(r.report(event('a')), true);
    assert.equal(r.report(event('b')), false);
    await r.idle();
    r.close();
    assert.equal(r.report(event('c')), false);
    assert.deepEqual(sent, ['a', 'b', 'a']);
  });

  it('remembers a bounded number of findings, forgetting the oldest', async () => {
    const r = new EventReporter(async () => undefined, logger(), { ...EVENT_LIMITS, remembered: 2, burst: 100, perSecond: 100 }, fakeClock());
    for (const p of ['a', 'b', 'c']) r.report(event(p));
    await r.idle();
    assert.equal(r.report(event('c')), false);
    assert.equal(r.report(event('a')), true, 'the oldest was forgotten');
  });
});
