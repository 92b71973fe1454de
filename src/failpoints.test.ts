import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { ALL_FAILPOINTS, armFailpoints, failpoint, shimFailpoints } from './failpoints';

describe('failpoints', () => {
  afterEach(() => armFailpoints([]));

  it('do nothing unless armed, and fail an armed step with an error naming it', () => {
    failpoint('run_pod.shim');
    armFailpoints(['run_pod.shim=error']);
    failpoint('run_pod.netns');
    assert.throws(() => failpoint('run_pod.shim'), /failpoint run_pod\.shim/);
  });

  it('refuse unknown steps and actions, errors after the outcome is recorded, and shim steps that do not kill', () => {
    assert.throws(() => armFailpoints(['run_pod.nowhere=kill']), /"run_pod\.nowhere" is not a step/);
    assert.throws(() => armFailpoints(['run_pod.shim=explode']), /kill or error/);
    assert.throws(() => armFailpoints(['run_pod.recorded=error']), /only kills/);
    assert.throws(() => armFailpoints(['shim.create.cgroup=error']), /only kill/);
  });

  it("pass the shim's steps to its environment", () => {
    armFailpoints(['shim.create.cgroup=kill', 'shim.exec.spawned', 'run_pod.shim=error']);
    assert.equal(shimFailpoints(), 'create.cgroup,exec.spawned');
  });

  it('name only steps the code passes: each is called once in the sources, and the shim knows its own', () => {
    const root = path.resolve(__dirname, '../../');
    const read = (dir: string, ext: string): string =>
      fs
        .readdirSync(dir, { withFileTypes: true })
        .map((e) => (e.isDirectory() ? read(path.join(dir, e.name), ext) : e.name.endsWith(ext) && !e.name.endsWith('.test.ts') ? fs.readFileSync(path.join(dir, e.name), 'utf8') : ''))
        .join('\n');
    const ts = read(path.join(root, 'src'), '.ts');
    const c = read(path.join(root, 'shim', 'src'), '.c');
    for (const step of ALL_FAILPOINTS) {
      const calls = step.startsWith('shim.') ? c.split(`shim_failpoint("${step.slice(5)}")`).length - 1 : ts.split(`failpoint('${step}')`).length - 1;
      assert.equal(calls, 1, `${step} is passed once`);
    }
  });
});
