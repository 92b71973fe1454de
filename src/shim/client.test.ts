import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { EXEC_SYNC_MAX_OUTPUT, ShimClient, ShimError, ShimLostError } from './client';

/** A stand-in shim on a unix socket: answer(request) gives what to write back. */
async function fakeShim(answer: (req: { id: number; method: string; params: Record<string, unknown> }) => Buffer[]): Promise<{ socket: string; close: () => void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-fake-shim-'));
  const socket = path.join(dir, 'shim.sock');
  const server = net.createServer((c) => {
    let pending = '';
    c.on('data', (d) => {
      const lines = (pending + d.toString()).split('\n');
      pending = lines.pop()!;
      for (const l of lines) for (const b of answer(JSON.parse(l))) c.write(b);
    });
    c.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    socket,
    close: () => {
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const line = (o: object) => Buffer.from(JSON.stringify(o) + '\n');
const PROC = { args: ['x'] };

describe('ShimClient sync exec', () => {
  it('reads the raw output after its line, in any split, and then the next answer', async () => {
    const out = Buffer.alloc(300_000, 'o');
    const err = Buffer.from('err\n');
    const shim = await fakeShim((req) => {
      if (req.method !== 'exec') return [line({ id: req.id, result: { protocol: 1 } })];
      assert.equal(req.params.rawOutput, true);
      const all = Buffer.concat([line({ id: req.id, result: { exitCode: 2, signal: 0, timedOut: false, truncated: false, stdoutBytes: out.length, stderrBytes: err.length } }), out, err]);
      // Odd pieces: the line, the bytes and the next answer split anywhere.
      return [all.subarray(0, 10), all.subarray(10, 70_001), all.subarray(70_001)];
    });
    const client = await ShimClient.connect(shim.socket);
    try {
      const [r, v] = await Promise.all([client.execSync({ id: 'c', process: PROC }), client.version()]);
      assert.deepEqual([r.exitCode, r.stdout.equals(out), r.stderr.toString(), r.truncated], [2, true, 'err\n', false]);
      assert.equal(v.protocol, 1);
    } finally {
      client.close();
      shim.close();
    }
  });

  it('writes the output where it is told, and answers an exec without output at once', async () => {
    const shim = await fakeShim((req) =>
      req.params.id === 'quiet'
        ? [line({ id: req.id, result: { exitCode: 0, signal: 9, timedOut: true, truncated: false, stdoutBytes: 0, stderrBytes: 0 } })]
        : [line({ id: req.id, result: { exitCode: 0, signal: 0, timedOut: false, truncated: false, stdoutBytes: 0, stderrBytes: 3 } }), Buffer.from('abc')],
    );
    const client = await ShimClient.connect(shim.socket);
    try {
      const into = Buffer.alloc(10, '.');
      const r = await client.execSync({ id: 'c', process: PROC }, (o, e) => ({ stdout: into.subarray(1, 1 + o), stderr: into.subarray(2, 2 + e) }));
      assert.equal(into.toString(), '..abc.....');
      assert.equal(r.stdout.length, 0);
      const quiet = await client.execSync({ id: 'quiet', process: PROC });
      assert.deepEqual([quiet.timedOut, quiet.signal, quiet.stdout.length, quiet.stderr.length], [true, 9, 0, 0]);
    } finally {
      client.close();
      shim.close();
    }
  });

  it('cuts the base64 output of a shim from before rawOutput to the cap, stdout first', async () => {
    const out = Buffer.alloc(EXEC_SYNC_MAX_OUTPUT - 10, 'o');
    const err = Buffer.alloc(100, 'e');
    const shim = await fakeShim((req) => [line({ id: req.id, result: { exitCode: 0, signal: 0, timedOut: false, truncated: false, stdout: out.toString('base64'), stderr: err.toString('base64') } })]);
    const client = await ShimClient.connect(shim.socket);
    try {
      const r = await client.execSync({ id: 'c', process: PROC });
      assert.deepEqual([r.stdout.length, r.stderr.length, r.truncated], [out.length, 10, true]);
      assert.equal(r.stderr.toString(), 'e'.repeat(10));
    } finally {
      client.close();
      shim.close();
    }
  });

  it('refuses output announced past the cap, and drops the connection it can no longer read', async () => {
    const shim = await fakeShim((req) => [line({ id: req.id, result: { exitCode: 0, signal: 0, timedOut: false, truncated: false, stdoutBytes: EXEC_SYNC_MAX_OUTPUT, stderrBytes: 1 } })]);
    const client = await ShimClient.connect(shim.socket);
    const lost = new Promise<void>((resolve) => client.once('lost', () => resolve()));
    try {
      await assert.rejects(client.execSync({ id: 'c', process: PROC }), (e: ShimError) => e.code === 'INTERNAL' && /at most 16776192/.test(e.message));
      await lost;
      await assert.rejects(client.version(), ShimLostError);
    } finally {
      client.close();
      shim.close();
    }
  });

  it('fails a sync exec whose output the shim did not finish sending', async () => {
    const shim = await fakeShim((req) => [line({ id: req.id, result: { exitCode: 0, signal: 0, timedOut: false, truncated: false, stdoutBytes: 100, stderrBytes: 0 } }), Buffer.alloc(50)]);
    const client = await ShimClient.connect(shim.socket);
    try {
      const r = client.execSync({ id: 'c', process: PROC });
      await new Promise((resolve) => setTimeout(resolve, 50));
      client.close();
      await assert.rejects(r, ShimLostError);
    } finally {
      shim.close();
    }
  });
});
