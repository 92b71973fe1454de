// Exec, Attach (and the streaming URLs behind them) of a real skiffd, spoken over
// WebSocket the way kubectl's WebSocket executor speaks it.
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { WebSocket } from 'ws';
import type { PodSandboxConfig } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { runTempDir } from '../fixtures/cleanup';
import { TestNetwork } from '../fixtures/network';
import { startTestNode, TestNode } from '../fixtures/node';
import { statusCode } from '../fixtures/grpc';
import { Session, spdyExec as spdySession, spdyForward } from '../fixtures/spdy_client';
import { TestSkiffd } from '../fixtures/skiffd';


/** Run a channel-protocol session: send stdin (then close it on v5), an optional resize, collect the rest. */
function wsSession(url: string, protocol: string, o: { stdin?: Buffer; resize?: { Width: number; Height: number } } = {}): Promise<Session> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), [protocol]);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let status: Session['status'] = null;
    const base64 = protocol.includes('base64');
    ws.on('open', () => {
      const send = (ch: number, d: Buffer) => ws.send(base64 ? String.fromCharCode(48 + ch) + d.toString('base64') : Buffer.concat([Buffer.from([ch]), d]));
      if (o.resize) send(4, Buffer.from(JSON.stringify(o.resize)));
      if (o.stdin) {
        for (let i = 0; i < o.stdin.length; i += 64 * 1024) send(0, o.stdin.subarray(i, i + 64 * 1024));
        if (protocol.startsWith('v5')) ws.send(Buffer.from([255, 0]));
      }
    });
    ws.on('message', (raw: Buffer, isBinary: boolean) => {
      const m = Buffer.from(raw);
      if (m.length === 0) return;
      const ch = base64 && !isBinary ? m[0] - 48 : m[0];
      const data = base64 && !isBinary ? Buffer.from(m.subarray(1).toString(), 'base64') : m.subarray(1);
      if (data.length === 0) return;
      if (ch === 1) out.push(data);
      else if (ch === 2) err.push(data);
      else if (ch === 3) status = JSON.parse(data.toString()) as Session['status'];
    });
    ws.on('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })));
    ws.on('error', reject);
    ws.on('close', () => resolve({ out: Buffer.concat(out), err: Buffer.concat(err), status, protocol: ws.protocol }));
  });
}

const exitCode = (s: Session) => (s.status?.status === 'Success' ? 0 : Number(s.status?.details?.causes?.find((c) => c.reason === 'ExitCode')?.message ?? NaN));
const code = statusCode;

describe('CRI streaming: Exec, Attach and PortForward', function () {
  this.timeout(120_000);
  let node: TestNode;
  let skiffd: TestSkiffd;
  let podId = '';
  let podConfig: Reply<PodSandboxConfig>;
  let ctr = '';

  before(async () => {
    node = await startTestNode();
    skiffd = node.skiffd;
    const c = skiffd.client;
    podConfig = { metadata: { name: 'st', namespace: 'e2e', uid: 'st-1', attempt: 0 }, hostname: 'st', log_directory: path.join(skiffd.dir, 'logs'), linux: {} };
    podId = (await c.runtime('RunPodSandbox', { config: podConfig })).pod_sandbox_id;
    ctr = (await c.runtime('CreateContainer', { pod_sandbox_id: podId, config: { metadata: { name: 'main' }, image: { image: 'busybox' }, command: ['sleep', '1000'], log_path: 'main.log' }, sandbox_config: podConfig })).container_id;
    await c.runtime('StartContainer', { container_id: ctr });
  });
  after(async () => {
    await node?.stop();
  });

  const execUrl = async (cmd: string[], o: { stdin?: boolean; tty?: boolean; stderr?: boolean } = {}) =>
    (await skiffd.client.runtime('Exec', { container_id: ctr, cmd, stdin: !!o.stdin, stdout: true, stderr: o.stderr ?? !o.tty, tty: !!o.tty })).url;

  it('returns stdout, stderr and a non-zero exit code as kubectl reads it (v5)', async () => {
    const s = await wsSession(await execUrl(['sh', '-c', 'echo out; echo err >&2; exit 3']), 'v5.channel.k8s.io');
    assert.equal(s.protocol, 'v5.channel.k8s.io');
    assert.equal(s.out.toString(), 'out\n');
    assert.equal(s.err.toString(), 'err\n');
    assert.equal(s.status?.reason, 'NonZeroExitCode');
    assert.equal(exitCode(s), 3);
  });

  it('speaks the base64 channel protocol and reports success', async () => {
    const s = await wsSession(await execUrl(['echo', 'hello']), 'v4.base64.channel.k8s.io');
    assert.equal(s.out.toString(), 'hello\n');
    assert.equal(s.status?.status, 'Success');
  });

  it('pipes a megabyte of stdin through cat intact', async () => {
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
    const s = await wsSession(await execUrl(['cat'], { stdin: true }), 'v5.channel.k8s.io', { stdin: data });
    assert.equal(s.out.length, data.length);
    assert.ok(s.out.equals(data));
    assert.equal(exitCode(s), 0);
  });

  it('gives a tty the size the client sets', async () => {
    const s = await wsSession(await execUrl(['sh', '-c', 'until [ -n "$(stty size 2>/dev/null)" ]; do sleep 0.05; done; stty size'], { tty: true, stdin: true }), 'v5.channel.k8s.io', { resize: { Width: 100, Height: 30 } });
    assert.equal(s.out.toString().trim(), '30 100');
  });

  it('attaches to a running container with stdin', async () => {
    const c = skiffd.client;
    const id = (
      await c.runtime('CreateContainer', {
        pod_sandbox_id: podId,
        config: { metadata: { name: 'reader' }, image: { image: 'busybox' }, command: ['sh', '-c', 'read x; echo "got $x"; sleep 0.5'], stdin: true, log_path: 'reader.log' },
        sandbox_config: podConfig,
      })
    ).container_id;
    await c.runtime('StartContainer', { container_id: id });
    const { url } = await c.runtime('Attach', { container_id: id, stdin: true, stdout: true, stderr: true });
    const s = await wsSession(url, 'v5.channel.k8s.io', { stdin: Buffer.from('hello\n') });
    assert.match(s.out.toString(), /got hello/);
  });

  it('attaches two clients to a tty container, each seeing its output and the size set', async () => {
    const c = skiffd.client;
    const id = (
      await c.runtime('CreateContainer', {
        pod_sandbox_id: podId,
        config: { metadata: { name: 'tty' }, image: { image: 'busybox' }, command: ['sh', '-c', 'read x; until [ -n "$(stty size 2>/dev/null)" ]; do sleep 0.05; done; stty size; echo "line $x"; sleep 0.5'], tty: true, stdin: true, log_path: 'tty.log' },
        sandbox_config: podConfig,
      })
    ).container_id;
    await c.runtime('StartContainer', { container_id: id });
    const url = async () => (await c.runtime('Attach', { container_id: id, stdin: true, stdout: true, tty: true })).url;
    const [watcher, writer] = await Promise.all([
      wsSession(await url(), 'v5.channel.k8s.io'),
      (async () => {
        const u = await url();
        await new Promise((r) => setTimeout(r, 200)); // the watcher is attached first
        // The size and the line travel on separate channels and may reach the terminal in
        // either order: the shell waits for a size before it prints one.
        return wsSession(u, 'v5.channel.k8s.io', { resize: { Width: 77, Height: 22 }, stdin: Buffer.from('one\n') });
      })(),
    ]);
    for (const s of [watcher, writer]) {
      assert.match(s.out.toString(), /22 77/);
      assert.match(s.out.toString(), /line one/);
    }
  });

  it('speaks SPDY/3.1 as client-go does: streams, exit code, stdin', async () => {
    const s = await spdySession(await execUrl(['sh', '-c', 'echo out; echo err >&2; exit 3']), ['v4.channel.k8s.io', 'v3.channel.k8s.io'], { stdout: true, stderr: true });
    assert.equal(s.protocol, 'v4.channel.k8s.io');
    assert.equal(s.out.toString(), 'out\n');
    assert.equal(s.err.toString(), 'err\n');
    assert.equal(exitCode(s), 3);
    const data = Buffer.alloc(512 * 1024, 'z');
    const c = await spdySession(await execUrl(['cat'], { stdin: true }), ['v4.channel.k8s.io'], { stdin: data, stdout: true, stderr: true });
    assert.ok(c.out.equals(data));
    assert.equal(c.status?.status, 'Success');
    const t = await spdySession(await execUrl(['sh', '-c', 'until [ -n "$(stty size 2>/dev/null)" ]; do sleep 0.05; done; stty size'], { tty: true, stdin: true }), ['v4.channel.k8s.io'], { stdin: Buffer.alloc(0), stdout: true, resize: { Width: 90, Height: 20 } });
    assert.equal(t.out.toString().trim(), '20 90');
  });

  it('refuses a SPDY client whose protocols it does not speak', async () => {
    await assert.rejects(spdySession(await execUrl(['true']), ['v9.channel.k8s.io'], { stdout: true }), (e: { statusCode?: number }) => e.statusCode === 403);
  });

  it('forwards ports into the pod network namespace, over SPDY and WebSocket', async () => {
    const c = skiffd.client;
    const web = (
      await c.runtime('CreateContainer', {
        pod_sandbox_id: podId,
        config: { metadata: { name: 'web' }, image: { image: 'busybox' }, command: ['sh', '-c', 'mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www'] },
        sandbox_config: podConfig,
      })
    ).container_id;
    await c.runtime('StartContainer', { container_id: web });
    const get = Buffer.from('GET /index.html HTTP/1.0\r\n\r\n');
    let r = { data: '', error: '' };
    // httpd needs a moment to listen: refused until then.
    for (let i = 0; i < 25 && !r.data; i++) {
      r = await spdyForward((await c.runtime('PortForward', { pod_sandbox_id: podId, port: [8080] })).url, 8080, get);
      if (!r.data) await new Promise((res) => setTimeout(res, 200));
    }
    assert.match(r.data, /^HTTP\/1\.[01] 200/);
    assert.match(r.data, /hello-from-pod/);
    // Several forwards at once, each with its own connection in the pod.
    const urls = await Promise.all([1, 2, 3, 4].map(async () => (await c.runtime('PortForward', { pod_sandbox_id: podId, port: [8080] })).url));
    const many = await Promise.all(urls.map((u) => spdyForward(u, 8080, get)));
    for (const m of many) assert.match(m.data, /hello-from-pod/);
    // A closed port: the error stream says so.
    const refused = await spdyForward((await c.runtime('PortForward', { pod_sandbox_id: podId, port: [8081] })).url, 8081, get);
    assert.match(refused.error, /port 8081.*(refused|Connection)/i);
    // The host's own loopback is not the pod's.
    const host = http.createServer((_q, res) => res.end('host')).listen(0, '127.0.0.1');
    await new Promise((res) => host.once('listening', res));
    const hostPort = (host.address() as { port: number }).port;
    const other = await spdyForward((await c.runtime('PortForward', { pod_sandbox_id: podId, port: [hostPort] })).url, hostPort, get);
    host.close();
    assert.doesNotMatch(other.data, /host/);
    assert.match(other.error, /refused/i);
    // WebSocket: the port number first on each channel, then the data.
    const wsUrl = (await c.runtime('PortForward', { pod_sandbox_id: podId, port: [8080] })).url.replace(/^http/, 'ws') + '?port=8080';
    const body = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(wsUrl, ['v4.channel.k8s.io']);
      const chunks: Buffer[] = [];
      let first = true;
      ws.on('message', (m: Buffer) => {
        const b = Buffer.from(m);
        if (b[0] !== 0) return;
        if (first) {
          first = false;
          assert.equal(b.readUInt16LE(1), 8080);
          ws.send(Buffer.concat([Buffer.from([0]), get]));
          return;
        }
        chunks.push(b.subarray(1));
      });
      ws.on('close', () => resolve(Buffer.concat(chunks).toString()));
      ws.on('error', reject);
    });
    assert.match(body, /hello-from-pod/);
  });

  it('serves streaming over TLS when given a certificate', async () => {
    const dir = runTempDir('skiff-tls-');
    const tls = await TestSkiffd.start({
      args: ['--network.write_default_config', 'false', '--streaming.tls_cert', path.join(dir, 'cert.pem'), '--streaming.tls_key', path.join(dir, 'key.pem')],
      before: () =>
        execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' }),
    });
    const tnet = new TestNetwork(path.join(tls.dir, 'net.d'), path.join(tls.dir, 'ipam'));
    try {
      tls.mirror('docker.io', node.reg.host);
      const c = tls.client;
      await c.image('PullImage', { image: { image: 'busybox' } });
      const cfg = { metadata: { name: 'tls', namespace: 'e2e', uid: 'tls-1', attempt: 0 }, linux: {} };
      const pod = (await c.runtime('RunPodSandbox', { config: cfg })).pod_sandbox_id;
      const id = (await c.runtime('CreateContainer', { pod_sandbox_id: pod, config: { metadata: { name: 'm' }, image: { image: 'busybox' }, command: ['sleep', '100'] }, sandbox_config: cfg })).container_id;
      await c.runtime('StartContainer', { container_id: id });
      const { url } = await c.runtime('Exec', { container_id: id, cmd: ['echo', 'over-tls'], stdout: true });
      assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/exec\//);
      const out = await new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(url.replace(/^https/, 'wss'), ['v5.channel.k8s.io'], { rejectUnauthorized: false });
        let text = '';
        ws.on('message', (m: Buffer) => {
          if (m[0] === 1) text += Buffer.from(m).subarray(1).toString();
        });
        ws.on('close', () => resolve(text));
        ws.on('error', reject);
      });
      assert.equal(out, 'over-tls\n');
    } finally {
      await tls.cleanup();
      tnet.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a used token, and bad requests with the right codes', async () => {
    const url = await execUrl(['true']);
    await wsSession(url, 'v5.channel.k8s.io');
    await assert.rejects(wsSession(url, 'v5.channel.k8s.io'), (e: { statusCode?: number }) => e.statusCode === 404);
    await assert.rejects(wsSession(url.replace(/[^/]+$/, 'forged'), 'v5.channel.k8s.io'), (e: { statusCode?: number }) => e.statusCode === 404);
    const c = skiffd.client;
    assert.equal(await code(c.runtime('Exec', { container_id: 'nope', cmd: ['true'], stdout: true })), 5);
    assert.equal(await code(c.runtime('Exec', { container_id: ctr, cmd: [], stdout: true })), 3);
    assert.equal(await code(c.runtime('Exec', { container_id: ctr, cmd: ['true'] })), 3);
    assert.equal(await code(c.runtime('Exec', { container_id: ctr, cmd: ['true'], stdout: true, stderr: true, tty: true })), 3);
    const created = (await c.runtime('CreateContainer', { pod_sandbox_id: podId, config: { metadata: { name: 'idle' }, image: { image: 'busybox' }, command: ['true'] }, sandbox_config: podConfig })).container_id;
    assert.equal(await code(c.runtime('Attach', { container_id: created, stdout: true })), 9);
    assert.equal(await code(c.runtime('PortForward', { pod_sandbox_id: podId, port: [70000] })), 3);
    assert.equal(await code(c.runtime('PortForward', { pod_sandbox_id: 'nope', port: [80] })), 5);
  });

  it('leaves no fd or process behind after 100 exec sessions', async () => {
    const shimPid = Number(fs.readFileSync(path.join(skiffd.state, 'pods', podId, 'shim', 'shim.pid'), 'utf8'));
    const fds = () => fs.readdirSync(`/proc/${shimPid}/fd`).length;
    await wsSession(await execUrl(['true']), 'v5.channel.k8s.io');
    // The shim keeps a finished session's socket until skiffd has closed its end too.
    await new Promise((r) => setTimeout(r, 200));
    const before = fds();
    for (let i = 0; i < 100; i++) {
      const s = await wsSession(await execUrl(['true']), 'v5.channel.k8s.io');
      assert.equal(exitCode(s), 0);
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(fds(), before);
    const ps = (await skiffd.client.runtime('ExecSync', { container_id: ctr, cmd: ['ps', '-o', 'args'], timeout: 5 })).stdout;
    assert.deepEqual(Buffer.from(ps).toString().trim().split('\n').slice(1).filter((l) => !l.startsWith('httpd')), ['sleep 1000', 'ps -o args']);
  });
});
