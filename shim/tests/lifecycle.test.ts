// Container lifecycle through the shim protocol: create/start split, exits,
// signals, kill, delete, and a shim that outlives its client.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import { ShimClient, ShimError, ShimLostError } from '../../src/shim/client';
import { TestPod, cgroupDirs, CGROUP_PARENT, makeBundle, processAlive, readCriLog, removeCgroup, tempDir, waitFor } from './fixtures';

describe('shim lifecycle', function () {
  let t: TestPod;
  before(async () => {
    t = await TestPod.start({ hostname: 'life' });
  });
  after(async () => {
    await t.stop();
  });

  it('reports its protocol version and pid', async () => {
    const v = await t.client.version();
    assert.equal(v.protocol, 1);
    assert.equal(v.pid, t.shimPid);
  });

  it('holds a created container before execve until start', async () => {
    const log = `${tempDir()}/c.log`;
    const bundle = makeBundle({ id: 'split', args: ['echo', 'started'] });
    const { pid } = await t.client.create({ id: 'split', bundle, logPath: log });
    assert.equal((await t.client.state({ id: 'split' })).status, 'created');
    // Still the shim's binary, not echo: nothing has run yet.
    assert.ok(processAlive(pid));
    assert.equal(readCriLog(log).length, 0);
    await t.client.start({ id: 'split' });
    const exit = await t.client.wait({ id: 'split' });
    assert.equal(exit.exitCode, 0);
    assert.deepEqual(readCriLog(log).map((r) => r.text), ['started']);
    assert.equal((await t.client.state({ id: 'split' })).status, 'stopped');
    await t.client.delete({ id: 'split' });
  });

  it('runs the process as PID 1 of its own PID namespace', async () => {
    const log = `${tempDir()}/c.log`;
    await t.run({ id: 'pid1', args: ['sh', '-c', 'echo $$'], logPath: log });
    await t.client.wait({ id: 'pid1' });
    assert.equal(readCriLog(log)[0].text, '1');
    await t.client.delete({ id: 'pid1' });
  });

  it('reports exit codes', async () => {
    await t.run({ id: 'exit3', args: ['sh', '-c', 'exit 3'] });
    const e = await t.client.wait({ id: 'exit3' });
    assert.equal(e.exitCode, 3);
    assert.equal(e.signal, 0);
    assert.equal(e.oomKilled, false);
    await t.client.delete({ id: 'exit3' });
  });

  it('reports death by signal as 128+n with the signal', async () => {
    await t.run({ id: 'sig', args: ['sleep', '1000'] });
    await t.client.kill({ id: 'sig', signal: 9 });
    const e = await t.client.wait({ id: 'sig' });
    assert.equal(e.signal, 9);
    assert.equal(e.exitCode, 137);
    await t.client.delete({ id: 'sig' });
  });

  it('writes an exit file and sends an exit event', async () => {
    await t.client.subscribe();
    const got = new Promise((resolve) => t.client.once('exit', resolve));
    await t.run({ id: 'ev', args: ['sh', '-c', 'exit 5'] });
    const ev = (await got) as { id: string; exitCode: number };
    assert.equal(ev.id, 'ev');
    assert.equal(ev.exitCode, 5);
    const file = JSON.parse(fs.readFileSync(`${t.stateDir}/exits/ev.json`, 'utf8'));
    assert.equal(file.exitCode, 5);
    assert.match(file.exitedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    await t.client.delete({ id: 'ev' });
    assert.equal(fs.existsSync(`${t.stateDir}/exits/ev.json`), false);
  });

  it('refuses to delete a running container without force, and deletes it with force', async () => {
    await t.run({ id: 'busy', args: ['sleep', '1000'] });
    await assert.rejects(t.client.delete({ id: 'busy' }), (e: ShimError) => e.code === 'FAILED_PRECONDITION');
    await t.client.delete({ id: 'busy', force: true });
    assert.equal(cgroupDirs(`${CGROUP_PARENT}/busy`).length, 0, 'cgroup removed');
    await assert.rejects(t.client.state({ id: 'busy' }), (e: ShimError) => e.code === 'NOT_FOUND');
  });

  it('answers NOT_FOUND for unknown containers and ALREADY_EXISTS for a reused id', async () => {
    await assert.rejects(t.client.start({ id: 'nope' }), (e: ShimError) => e.code === 'NOT_FOUND' && /nope/.test(e.message));
    await t.run({ id: 'twice', args: ['sleep', '1000'] });
    const bundle = makeBundle({ id: 'twice', args: ['true'] });
    await assert.rejects(t.client.create({ id: 'twice', bundle }), (e: ShimError) => e.code === 'ALREADY_EXISTS');
    await t.client.delete({ id: 'twice', force: true });
  });

  it('keeps containers running while its client goes away, and serves a new client', async () => {
    // PID 1 of a namespace only gets the signals it handles: trap TERM.
    await t.run({ id: 'stay', args: ['sh', '-c', 'trap "exit 7" TERM; while true; do sleep 0.1; done'] });
    const pid = (await t.client.state({ id: 'stay' })).pid;
    t.client.close();
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(processAlive(pid));
    t.client = await ShimClient.connect(`${t.stateDir}/shim.sock`);
    const list = await t.client.list();
    const c = list.containers.find((x) => x.id === 'stay');
    assert.equal(c?.status, 'running');
    assert.equal(list.pod?.hostname, 'life');
    await t.client.kill({ id: 'stay', signal: 15 });
    assert.equal((await t.client.wait({ id: 'stay' })).exitCode, 7);
    await t.client.delete({ id: 'stay' });
  });
});

describe('a killed shim', function () {
  it('is noticed by its client: pending calls fail and "lost" fires', async () => {
    const t = await TestPod.start();
    try {
      await t.run({ id: 'w', args: ['sleep', '1000'] });
      const containerPid = (await t.client.state({ id: 'w' })).pid;
      const lost = new Promise<void>((r) => t.client.once('lost', () => r()));
      const pending = t.client.wait({ id: 'w' });
      process.kill(t.shimPid, 'SIGKILL');
      await assert.rejects(pending, (e: Error) => e instanceof ShimLostError);
      await lost;
      // Its containers and the pod go with it (parent-death signal).
      await waitFor(() => !processAlive(containerPid) && !processAlive(t.pod.pid), 'pod processes to die');
      // What skiffd then does: the empty cgroup can be removed.
      removeCgroup(`${CGROUP_PARENT}/w`);
    } finally {
      await t.stop();
    }
  });
});
