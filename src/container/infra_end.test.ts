import assert from 'node:assert/strict';
import { spawn } from 'child_process';
import { FailedPrecondition } from '../errors';
import { explainInfraGone, infraEnd } from './infra_end';

/** A zombie that `how` ended (a child of a python3 that never waits for it), and its
 * parent to kill afterwards. */
async function zombie(how: 'kill9' | 'exit3'): Promise<{ pid: number; parent: ReturnType<typeof spawn> }> {
  const end = how === 'kill9' ? 'os.kill(os.getpid(), 9)' : 'os._exit(3)';
  const parent = spawn('python3', ['-c', `import os, sys, time\np = os.fork()\nif p == 0:\n  ${end}\nprint(p, flush=True)\ntime.sleep(60)`]);
  const pid = Number(await new Promise<string>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(d.toString()))));
  // Until the child has become a zombie.
  for (let i = 0; i < 200 && (await infraEnd(pid)) === null; i++) await new Promise((r) => setTimeout(r, 10));
  return { pid, parent };
}

describe("a pod's infra process, ended", () => {
  it('is null while the process runs, and says how it ended once it has', async () => {
    assert.equal(await infraEnd(process.pid), null);
    for (const [how, said] of [['kill9', 'has been killed by signal 9'], ['exit3', 'has exited with status 3']] as const) {
      const z = await zombie(how);
      try {
        assert.equal(await infraEnd(z.pid), said);
      } finally {
        z.parent.kill('SIGKILL');
      }
    }
    // Reaped (a pid above pid_max's largest): what the shim recorded, else no more than that.
    assert.equal(await infraEnd(2 ** 22 + 7), 'has exited');
    assert.equal(await infraEnd(2 ** 22 + 7, async () => 9), 'has been killed by signal 9');
    assert.equal(await infraEnd(2 ** 22 + 7, async () => 2 << 8), 'has exited with status 2');
  });

  it("turns a missing /proc path of the ended infra's into FAILED_PRECONDITION, and leaves other errors", async () => {
    const z = await zombie('kill9');
    try {
      const missing = Object.assign(new Error(`ENOENT: no such file or directory, open '/proc/${z.pid}/ns/user'`), { code: 'ENOENT', path: `/proc/${z.pid}/ns/user` });
      const e = await explainInfraGone(missing, z.pid, 'abc');
      assert.ok(e instanceof FailedPrecondition);
      assert.equal((e as Error).message, `create container "abc": the pod's infra process, whose namespaces the container joins, has been killed by signal 9`);
      const other = Object.assign(new Error('ENOENT: /var/lib/x'), { code: 'ENOENT', path: '/var/lib/x' });
      assert.equal(await explainInfraGone(other, z.pid, 'abc'), other);
      assert.equal(await explainInfraGone(missing, process.pid, 'abc'), missing, 'another pid');
    } finally {
      z.parent.kill('SIGKILL');
    }
  });
});
