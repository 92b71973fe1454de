// Container stdio: CRI log lines (full, partial, 16 KiB cuts, reopen), sync
// and streaming exec with and without a tty, and attach.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { EXEC_SYNC_MAX_OUTPUT, ShimError, ShimStream } from '../../src/shim/client';
import { TestPod, processAlive, readCriLog, tempDir, waitFor } from './fixtures';

const RFC3339NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;
const PROC = { env: ['PATH=/bin'], cwd: '/' };

function collect(s: ShimStream): { out: () => string; err: () => string; outBytes: () => Buffer } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  s.on('stdout', (b: Buffer) => out.push(b));
  s.on('stderr', (b: Buffer) => err.push(b));
  return {
    out: () => Buffer.concat(out).toString(),
    err: () => Buffer.concat(err).toString(),
    outBytes: () => Buffer.concat(out),
  };
}

describe('shim io', function () {
  let t: TestPod;
  before(async () => {
    t = await TestPod.start({ hostname: 'iopod' });
    await t.run({ id: 'box', args: ['sleep', '1000'] });
  });
  after(async () => {
    await t.stop();
  });

  it('writes stdout and stderr as CRI log lines, tagging pieces without newline P', async () => {
    const log = path.join(tempDir(), 'c.log');
    await t.run({ id: 'log1', args: ['sh', '-c', 'echo one; echo two >&2; printf abc'], logPath: log });
    await t.client.wait({ id: 'log1' });
    await t.client.delete({ id: 'log1' });
    const recs = readCriLog(log);
    for (const r of recs) assert.match(r.time, RFC3339NANO);
    assert.deepEqual(
      recs.map((r) => [r.stream, r.tag, r.text]).sort(),
      [['stderr', 'F', 'two'], ['stdout', 'F', 'one'], ['stdout', 'P', 'abc']].sort(),
    );
  });

  it('cuts a 20 KiB line into a 16 KiB P record and an F record', async () => {
    const log = path.join(tempDir(), 'c.log');
    await t.run({ id: 'log2', args: ['sh', '-c', 'head -c 20480 /dev/zero | tr "\\0" x; echo'], logPath: log });
    await t.client.wait({ id: 'log2' });
    await t.client.delete({ id: 'log2' });
    const recs = readCriLog(log);
    assert.equal(recs.map((r) => r.text).join(''), 'x'.repeat(20480));
    assert.equal(recs[recs.length - 1].tag, 'F');
    assert.ok(recs.every((r) => r.text.length <= 16384));
    assert.ok(recs.some((r) => r.tag === 'P' && r.text.length === 16384));
  });

  it('reopens the log file on request (rotation)', async () => {
    const dir = tempDir();
    const log = path.join(dir, 'c.log');
    await t.run({ id: 'rot', args: ['sh', '-c', 'i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done'], logPath: log });
    await waitFor(() => readCriLog(log).length >= 2, 'first lines');
    fs.renameSync(log, `${log}.1`);
    await t.client.reopenLog({ id: 'rot' });
    await waitFor(() => readCriLog(log).length >= 2, 'lines in the new file');
    const before = readCriLog(`${log}.1`).map((r) => r.text);
    const after = readCriLog(log).map((r) => r.text);
    assert.ok(before.length >= 2);
    assert.equal(after.filter((l) => before.includes(l)).length, 0, 'no line in both files');
    await t.client.delete({ id: 'rot', force: true });
  });

  it('runs a sync exec and returns its output and exit code', async () => {
    const r = await t.client.execSync({ id: 'box', process: { args: ['sh', '-c', 'echo out; echo err >&2; exit 3'], ...PROC } });
    assert.equal(r.exitCode, 3);
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.timedOut, false);
  });

  it('kills a sync exec at its timeout and says so', async () => {
    // A command that outlives the test: only the timeout can end the call, by killing it.
    const r = await t.client.execSync({ id: 'box', process: { args: ['sleep', '600'], ...PROC }, timeoutMs: 300 });
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 9);
  });

  it('caps sync exec output, stdout and stderr together, and keeps reading past the cap', async () => {
    // The writer is never blocked by the cap: it writes all 40 MiB and its exit code comes back.
    const r = await t.client.execSync({ id: 'box', process: { args: ['sh', '-c', 'head -c 1000000 /dev/zero >&2; head -c 40000000 /dev/zero; echo done >&2; exit 4'], ...PROC } });
    assert.equal(r.exitCode, 4);
    assert.equal(r.stderr.length, 1000000);
    assert.equal(r.stdout.length, EXEC_SYNC_MAX_OUTPUT - 1000000);
    assert.equal(r.truncated, true);
    const whole = await t.client.execSync({ id: 'box', process: { args: ['sh', '-c', `head -c ${EXEC_SYNC_MAX_OUTPUT} /dev/zero`], ...PROC } });
    assert.deepEqual([whole.stdout.length, whole.truncated], [EXEC_SYNC_MAX_OUTPUT, false]);
  });

  it('answers a sync exec after its output on the same connection, in order with other calls', async () => {
    // Two large execs and small calls at once on the one connection: each answer gets its own bytes.
    const big = (c: string, n: number) => t.client.execSync({ id: 'box', process: { args: ['sh', '-c', `head -c ${n} /dev/zero | tr '\\0' ${c}; echo -n ${c} >&2`], ...PROC } });
    const [a, state, b] = await Promise.all([big('a', 3_000_000), t.client.state({ id: 'box' }), big('b', 5_000_000)]);
    assert.equal(state.status, 'running');
    for (const [r, c, n] of [[a, 'a', 3_000_000], [b, 'b', 5_000_000]] as const) {
      assert.equal(r.stdout.length, n);
      assert.ok(r.stdout.every((x) => x === c.charCodeAt(0)));
      assert.equal(r.stderr.toString(), c);
    }
    assert.equal((await t.client.version()).protocol, 1, 'the connection still speaks JSON lines');
  });

  it('answers a client from before rawOutput with base64 in the line', async () => {
    const sock = net.createConnection(path.join(t.stateDir, 'shim.sock'));
    const lines: string[] = [];
    let rest = '';
    sock.on('data', (d) => {
      const parts = (rest + d.toString()).split('\n');
      rest = parts.pop()!;
      lines.push(...parts);
    });
    sock.write(JSON.stringify({ id: 1, method: 'exec', params: { id: 'box', sync: true, process: { args: ['sh', '-c', 'echo out; echo err >&2'], ...PROC } } }) + '\n');
    await waitFor(() => lines.length > 0, 'the answer');
    sock.destroy();
    const { result } = JSON.parse(lines[0]) as { result: { stdout: string; stderr: string; exitCode: number } };
    assert.deepEqual([Buffer.from(result.stdout, 'base64').toString(), Buffer.from(result.stderr, 'base64').toString(), result.exitCode], ['out\n', 'err\n', 0]);
  });

  it('gives back what a large sync exec took', async () => {
    const rss = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${t.shimPid}/status`, 'utf8'))![1]) * 1024;
    await t.client.execSync({ id: 'box', process: { args: ['true'], ...PROC } });
    const before = rss();
    fs.writeFileSync(`/proc/${t.shimPid}/clear_refs`, '5'); // VmHWM from here on
    await Promise.all([0, 1].map(() => t.client.execSync({ id: 'box', process: { args: ['sh', '-c', 'head -c 64000000 /dev/zero'], ...PROC } })));
    const peak = Number(/^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${t.shimPid}/status`, 'utf8'))![1]) * 1024;
    assert.ok(peak - before <= 2.5 * EXEC_SYNC_MAX_OUTPUT, `two calls at once took ${peak - before} bytes at the peak`);
    // Blocks this large are mappings of their own, unmapped once the reply is sent.
    await waitFor(() => rss() - before <= 2 * 1024 * 1024, 'the shim to give back memory');
  });

  it('fails an exec of a missing binary with a clear message', async () => {
    await assert.rejects(
      t.client.execSync({ id: 'box', process: { args: ['no-such-binary'], ...PROC } }),
      (e: ShimError) => e.code === 'NOT_FOUND' && /executable file not found in \$PATH/.test(e.message),
    );
  });

  it('streams an exec: stdout, stderr and the exit code', async () => {
    const s = await t.client.exec({ id: 'box', process: { args: ['sh', '-c', 'echo out; echo err >&2; exit 3'], ...PROC } });
    const c = collect(s);
    const exit = await s.exited;
    assert.equal(exit?.exitCode, 3);
    assert.equal(c.out(), 'out\n');
    assert.equal(c.err(), 'err\n');
  });

  it('pipes stdin through a streaming exec intact (1 MiB through cat)', async () => {
    const s = await t.client.exec({ id: 'box', process: { args: ['cat'], ...PROC }, stdin: true });
    const c = collect(s);
    const data = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
    s.write(data);
    s.closeStdin();
    const exit = await s.exited;
    assert.equal(exit?.exitCode, 0);
    assert.ok(c.outBytes().equals(data), `got ${c.outBytes().length} bytes back`);
  });

  it('gives a tty exec its terminal and applies resizes', async () => {
    const s = await t.client.exec({ id: 'box', process: { args: ['sh', '-c', 'until [ -n "$(stty size 2>/dev/null)" ]; do sleep 0.05; done; stty size; tty'], ...PROC, terminal: true } });
    const c = collect(s);
    s.resize(123, 45);
    const exit = await s.exited;
    assert.equal(exit?.exitCode, 0);
    const lines = c.out().split('\r\n');
    assert.equal(lines[0], '45 123');
    assert.match(lines[1], /^\/dev\/pts\/\d+$/);
  });

  it('reports the exit of an exec that ends before its client reads a frame', async () => {
    for (let i = 0; i < 5; i++) {
      const s = await t.client.exec({ id: 'box', process: { args: ['sh', '-c', 'test -t 1 && echo is-a-tty'], ...PROC, terminal: true } });
      const c = collect(s);
      s.resize(80, 24);
      const exit = await s.exited;
      assert.equal(exit?.exitCode, 0, `run ${i}: ${JSON.stringify(exit)}`);
      assert.match(c.out(), /is-a-tty/);
    }
  });

  it('ends an exec whose client disconnects', async () => {
    const s = await t.client.exec({ id: 'box', process: { args: ['sleep', '1000'], ...PROC } });
    const pid = s.pid;
    s.close();
    await waitFor(() => !processAlive(pid), 'exec to end');
  });

  it('attaches to a container: stdin reaches it, its output comes back, then its exit', async () => {
    const log = path.join(tempDir(), 'c.log');
    await t.run({ id: 'cat', args: ['sh', '-c', 'while read l; do echo got:$l; done; echo bye >&2'], logPath: log, stdin: true });
    const s = await t.client.attach({ id: 'cat', stdin: true });
    const c = collect(s);
    s.write('hello\nworld\n');
    await waitFor(() => c.out() === 'got:hello\ngot:world\n', 'echoed lines');
    s.closeStdin();
    const exit = await s.exited;
    assert.equal(exit?.exitCode, 0);
    assert.equal(c.err(), 'bye\n');
    assert.deepEqual(readCriLog(log).map((r) => r.text), ['got:hello', 'got:world', 'bye']);
    await t.client.delete({ id: 'cat' });
  });

  it('closes stdin after the first attach client leaves when stdinOnce is set', async () => {
    await t.run({ id: 'once', args: ['sh', '-c', 'cat; echo eof'], stdin: true, stdinOnce: true });
    const s = await t.client.attach({ id: 'once', stdin: true });
    const c = collect(s);
    s.write('x\n');
    await waitFor(() => c.out().includes('x'), 'echo');
    s.close();
    const exit = await t.client.wait({ id: 'once' });
    assert.equal(exit.exitCode, 0);
    await t.client.delete({ id: 'once' });
  });

  it('runs a container with a tty and serves it to an attached client', async () => {
    await t.run({ id: 'tty', args: ['sh'], stdin: true, edit: (s) => (s.process.terminal = true) });
    const s = await t.client.attach({ id: 'tty', stdin: true });
    const c = collect(s);
    s.write('echo hi-$((6*7)); exit 7\n');
    const exit = await s.exited;
    assert.equal(exit?.exitCode, 7);
    assert.match(c.out(), /hi-42/);
    await t.client.delete({ id: 'tty' });
  });

  it('leaves no fd or process behind after 100 exec sessions', async () => {
    const fds = () => fs.readdirSync(`/proc/${t.shimPid}/fd`).length;
    const procs = async () =>
      // A glob forks nothing: it counts sleep (PID 1), this sh, and leftovers.
      (await t.client.execSync({ id: 'box', process: { args: ['sh', '-c', 'set -- /proc/[0-9]*; echo $#'], ...PROC } })).stdout.toString().trim();
    const before = fds();
    const procsBefore = await procs();
    for (let i = 0; i < 50; i++) {
      const r = await t.client.execSync({ id: 'box', process: { args: ['true'], ...PROC } });
      assert.equal(r.exitCode, 0);
    }
    for (let i = 0; i < 50; i++) {
      const s = await t.client.exec({ id: 'box', process: { args: ['sh', '-c', 'echo $$'], ...PROC, terminal: i % 2 === 0 } });
      collect(s);
      assert.equal((await s.exited)?.exitCode, 0);
    }
    await waitFor(() => fds() === before, `shim fds back to ${before} (now ${fds()})`);
    assert.equal(await procs(), procsBefore, 'processes in the container');
  });

  it('refuses attach with stdin to a container created without stdin', async () => {
    await assert.rejects(t.client.attach({ id: 'box', stdin: true }), (e: ShimError) => e.code === 'FAILED_PRECONDITION');
  });
});
