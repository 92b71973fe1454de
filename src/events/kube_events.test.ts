import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { kubeEventSink, podEventBody } from './kube_events';
import type { PodEvent } from './event_reporter';

const EVENT: PodEvent = { pod: { name: 'web-0', namespace: 'shop', uid: 'u-1' }, container: 'app', reason: 'RootOnHost', message: 'Container app runs as uid 0' };

describe('kubernetes events: the Event posted', () => {
  it('is a Warning on the pod and its container, named as kubelet names its own', () => {
    const now = new Date('2026-12-07T12:00:00.000Z');
    const body = podEventBody(EVENT, now, 7, 'node-1');
    assert.equal(body.metadata.name, `web-0.${(BigInt(now.getTime()) * 1_000_000n + 7n).toString(16)}`);
    assert.equal(body.metadata.namespace, 'shop');
    assert.deepEqual(body.involvedObject, { apiVersion: 'v1', kind: 'Pod', name: 'web-0', namespace: 'shop', uid: 'u-1', fieldPath: 'spec.containers{app}' });
    assert.deepEqual([body.type, body.reason, body.message, body.count], ['Warning', 'RootOnHost', 'Container app runs as uid 0', 1]);
    assert.deepEqual(body.source, { component: 'skiff', host: 'node-1' });
    assert.notEqual(podEventBody(EVENT, now, 8, 'node-1').metadata.name, body.metadata.name, 'two in one millisecond differ');
  });
});

describe('kubernetes events: the sink, against a fake API server', function () {
  // Loading @kubernetes/client-node takes a while on a busy machine.
  this.timeout(60_000);
  let dir: string;
  let server: http.Server;
  let answer: (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;
  const requests: { method: string; url: string; auth: string; body: Record<string, unknown> }[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-events-'));
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d));
      req.on('end', () => {
        requests.push({ method: req.method!, url: req.url!, auth: req.headers.authorization ?? '', body: body ? JSON.parse(body) : {} });
        answer(req, body, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // Plain HTTP: client-node allows it only with TLS verification off.
  const kubeconfig = (server: string) => {
    const file = path.join(dir, 'kubeconfig');
    fs.writeFileSync(file, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${server}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: node-token}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
    return file;
  };
  const url = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  it('POSTs the Event to the pod namespace with the kubeconfig credentials', async () => {
    answer = (_req, body, res) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(body);
    };
    const { sink, server: address } = kubeEventSink(kubeconfig(url()));
    assert.equal(address, url());
    await sink(EVENT);
    const req = requests.at(-1)!;
    assert.deepEqual([req.method, req.url, req.auth], ['POST', '/api/v1/namespaces/shop/events', 'Bearer node-token']);
    assert.equal((req.body.involvedObject as { uid: string }).uid, 'u-1');
    assert.deepEqual([req.body.reason, req.body.type, req.body.count], ['RootOnHost', 'Warning', 1]);
    assert.match(String(req.body.firstTimestamp), /^\d{4}-\d\d-\d\dT/);
  });

  it("rejects with the API server's own message when it refuses", async () => {
    answer = (_req, _body, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'events is forbidden: User "system:node:x" cannot create', code: 403 }));
    };
    const { sink } = kubeEventSink(kubeconfig(url()));
    await assert.rejects(sink(EVENT), /HTTP 403: events is forbidden/);
  });

  it('rejects when nothing listens, and refuses a kubeconfig it cannot use', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const { sink } = kubeEventSink(kubeconfig(`http://127.0.0.1:${port}`));
    await assert.rejects(sink(EVENT), /ECONNREFUSED|connect/);
    assert.throws(() => kubeEventSink(path.join(dir, 'missing')), /ENOENT/);
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, 'apiVersion: v1\nkind: Config\n');
    assert.throws(() => kubeEventSink(empty), /no current cluster/);
  });
});
