import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Writable } from 'stream';
import type { ContainerRecord } from '../container/container_service';
import type { Isolation } from '../container/isolation';
import { Logger } from '../log';
import type { PodRecord } from '../sandbox/pod_registry';
import type { ChangeListener } from '../store/record_set';
import { EventReporter, PodEvent } from './event_reporter';
import { isolationFindings } from './findings';
import { startIsolationEvents, watchIsolationEvents } from './isolation_events';
import { fakeIsolation } from '../container/isolation_fake';

/** A logger that keeps its lines, parsed. */
function recording(): Logger & { lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const out = { write: (l: string) => lines.push(JSON.parse(l)) } as unknown as NodeJS.WritableStream;
  return Object.assign(new Logger('debug', {}, out, false), { lines });
}

const quiet = () => new Logger('error', {}, new Writable({ write: (_c, _e, cb) => cb() }), false);

const isolation = fakeIsolation;

describe('kubernetes events: isolation findings', () => {
  it('finds nothing for a container that runs as a user, in its pod, within limits', () => {
    assert.deepEqual(isolationFindings('app', isolation()), []);
  });

  it('names root on the host, privilege, each host namespace and the unbounded resources', () => {
    const found = isolationFindings(
      'app',
      isolation({ uid: 0, privileged: true, namespaces: { ...isolation().namespaces, pid: 'host', net: 'host', ipc: 'host' }, unbounded: ['memory', 'pids', 'io'] }),
    );
    assert.deepEqual(
      found.map((f) => f.reason),
      ['Privileged', 'RootOnHost', 'HostPIDNamespace', 'HostNetworkNamespace', 'HostIPCNamespace', 'UnboundedResources'],
    );
    assert.equal(found.at(-1)!.message, 'Container app has no memory limit, no pids limit and no IO weight of its own: it can take from the other pods on the node');
    assert.match(found[1].message, /^Container app runs as uid 0, which is root on the host/);
  });

  it('does not call uid 0 in a user namespace root on the host', () => {
    assert.deepEqual(isolationFindings('app', isolation({ uid: 0, uid0IsHostRoot: false })), []);
  });
});

describe('kubernetes events: started containers become events', () => {
  function sources(reports: Record<string, Isolation | Error>) {
    let containerListener: ChangeListener<ContainerRecord> = () => undefined;
    let podListener: ChangeListener<PodRecord> = () => undefined;
    const pods = new Map<string, PodRecord>();
    const src = {
      containers: {
        onChange: (l: ChangeListener<ContainerRecord>) => ((containerListener = l), () => (containerListener = () => undefined)),
        isolation: async (r: ContainerRecord) => {
          const i = reports[r.id];
          if (i instanceof Error) throw i;
          return i;
        },
      },
      pods: { onChange: (l: ChangeListener<PodRecord>) => ((podListener = l), () => undefined), get: (id: string) => pods.get(id) },
    };
    const pod = (id: string, meta: { name: string; namespace: string; uid: string } | null) => {
      const p = { id, config: { metadata: meta ? { ...meta, attempt: 0 } : null } } as unknown as PodRecord;
      pods.set(id, p);
      return p;
    };
    const ctr = (id: string, podId: string, name: string) => ({ id, podId, config: { metadata: { name, attempt: 0 } } }) as unknown as ContainerRecord;
    return { src, pod, ctr, start: (r: ContainerRecord) => containerListener('started', r), change: (c: 'created' | 'deleted', p: PodRecord) => podListener(c, p) };
  }
  const settle = () => new Promise((r) => setTimeout(r, 20));

  it('reports the findings of a started container on its pod, after the start returned', async () => {
    const t = sources({ c1: isolation({ uid: 0 }), c2: isolation(), c3: new Error('config.json: ENOENT') });
    const sent: PodEvent[] = [];
    const reporter = new EventReporter(async (e) => void sent.push(e), quiet());
    const stop = watchIsolationEvents(t.src, reporter, quiet());
    t.pod('p1', { name: 'web', namespace: 'shop', uid: 'u1' });
    t.start(t.ctr('c1', 'p1', 'app'));
    assert.equal(sent.length, 0, 'nothing happens inside the listener (the CRI call)');
    t.start(t.ctr('c2', 'p1', 'clean'));
    t.start(t.ctr('c3', 'p1', 'gone'));
    await settle();
    await reporter.idle();
    assert.deepEqual(sent, [{ pod: { name: 'web', namespace: 'shop', uid: 'u1' }, container: 'app', reason: 'RootOnHost', message: sent[0].message }]);
    // A restart of the container (same name) is the same finding: not sent again.
    t.start(t.ctr('c1', 'p1', 'app'));
    await settle();
    await reporter.idle();
    assert.equal(sent.length, 1);
    stop();
  });

  it('skips pods that are not Kubernetes pods, forgets deleted ones, and stops when told', async () => {
    const t = sources({ c1: isolation({ uid: 0 }), c2: isolation({ uid: 0 }) });
    const sent: PodEvent[] = [];
    const reporter = new EventReporter(async (e) => void sent.push(e), quiet());
    const stop = watchIsolationEvents(t.src, reporter, quiet());
    t.pod('bare', null);
    t.start(t.ctr('c2', 'bare', 'x'));
    const p1 = t.pod('p1', { name: 'web', namespace: 'shop', uid: 'u1' });
    t.start(t.ctr('c1', 'p1', 'app'));
    await settle();
    await reporter.idle();
    assert.equal(sent.length, 1);
    t.change('deleted', p1);
    t.start(t.ctr('c1', 'p1', 'app'));
    await settle();
    await reporter.idle();
    assert.equal(sent.length, 2, 'forgotten with its pod');
    stop();
    t.start(t.ctr('c1', 'p1', 'other'));
    await settle();
    assert.equal(sent.length, 2);
  });
});

describe('kubernetes events: turned on by events.kubeconfig', function () {
  this.timeout(60_000); // loading @kubernetes/client-node on a busy machine
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-events-on-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const src = { containers: { onChange: () => () => undefined, isolation: async () => isolation() }, pods: { onChange: () => () => undefined, get: () => undefined } };

  it('stays off without a kubeconfig, says so when the file is missing or makes no client, and is on with one', () => {
    const log = recording();
    assert.equal(startIsolationEvents('', src, log), undefined);
    assert.equal(log.lines.length, 0, 'off by default, silently');
    assert.equal(startIsolationEvents(path.join(dir, 'kubelet.conf'), src, log), undefined);
    assert.deepEqual(log.lines.map((l) => [l.level, l.msg]), [['warn', 'kubernetes events off: no kubeconfig']]);
    const bad = path.join(dir, 'bad.conf');
    fs.writeFileSync(bad, 'apiVersion: v1\nkind: Config\n');
    assert.equal(startIsolationEvents(bad, src, log), undefined);
    assert.match(log.lines.at(-1)!.msg, /events off: the kubeconfig makes no client/);
    const good = path.join(dir, 'good.conf');
    fs.writeFileSync(good, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
    const stop = startIsolationEvents(good, src, log);
    assert.equal(typeof stop, 'function');
    assert.deepEqual([log.lines.at(-1)!.msg, (log.lines.at(-1) as { server?: string }).server], ['kubernetes events on', 'https://127.0.0.1:6443']);
    stop!();
  });
});
