// ShimClient's errors against a stand-in shim on a unix socket: a shim that goes away is
// UNAVAILABLE for the call in flight and every later one, and a shim's error answer keeps
// its code.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { GrpcCode, grpcCode } from '../errors';
import { ShimClient, ShimError, ShimLostError } from './client';

/** A shim stand-in: `answer` gets each request line and writes what it likes, or nothing. */
async function standIn(answer: (req: { id: number; method: string }, socket: net.Socket) => void) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-shim-client-'));
  const socketPath = path.join(dir, 'shim.sock');
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('utf8');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        answer(JSON.parse(buf.slice(0, nl)), socket);
        buf = buf.slice(nl + 1);
      }
    });
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    /** What a SIGKILL of the shim does to its connections. */
    kill: () => {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('ShimClient errors', () => {
  it('fails the call in flight and every later one with UNAVAILABLE when the shim goes away', async () => {
    let received: () => void = () => undefined;
    const asked = new Promise<void>((resolve) => (received = resolve));
    const shim = await standIn(() => received()); // never answers
    const client = await ShimClient.connect(shim.socketPath);
    const lost = new Promise<void>((resolve) => client.once('lost', resolve));
    try {
      const inFlight = client.wait({ id: 'c1' });
      await asked;
      shim.kill();
      await assert.rejects(inFlight, (e: Error) => {
        assert.ok(e instanceof ShimLostError, `${e.name}: ${e.message}`);
        assert.equal(grpcCode(e), GrpcCode.UNAVAILABLE);
        assert.match(e.message, /connection to skiff-shim lost/);
        return true;
      });
      await lost;
      assert.equal(client.connected, false);
      await assert.rejects(client.state({ id: 'c1' }), (e: Error) => e instanceof ShimLostError && grpcCode(e) === GrpcCode.UNAVAILABLE);
    } finally {
      client.close();
      await shim.close();
    }
  });

  it("answers with the shim's code, and INTERNAL for a code it does not know", async () => {
    const shim = await standIn((req, socket) => {
      const code = req.method === 'start' ? 'RESOURCE_EXHAUSTED' : req.method === 'kill' ? 'FAILED_PRECONDITION' : 'NO_SUCH_CODE';
      socket.write(JSON.stringify({ id: req.id, error: { code, message: `${req.method}: refused`, errno: 11 } }) + '\n');
    });
    const client = await ShimClient.connect(shim.socketPath);
    try {
      for (const [call, code] of [
        [() => client.start({ id: 'c1' }), GrpcCode.RESOURCE_EXHAUSTED],
        [() => client.kill({ id: 'c1' }), GrpcCode.FAILED_PRECONDITION],
        [() => client.delete({ id: 'c1' }), GrpcCode.INTERNAL],
      ] as const)
        await assert.rejects(call(), (e: Error) => {
          assert.ok(e instanceof ShimError, e.message);
          assert.equal(grpcCode(e), code, e.message);
          assert.equal(e.errno, 11);
          assert.match(e.message, /: refused$/);
          return true;
        });
      assert.equal(client.connected, true, 'an error answer keeps the connection');
    } finally {
      client.close();
      await shim.close();
    }
  });
});
