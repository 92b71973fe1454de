import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FailedPrecondition } from '../errors';
import { Criu, probeCriu } from './criu';

describe('checkpoint: finding a CRIU that works', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-criu-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  /** A stand-in for criu: its --version output and its check's answer. */
  const fake = (version: string, check: { code: number; out: string }) => {
    const f = path.join(dir, 'criu');
    fs.writeFileSync(f, `#!/bin/sh\ncase "$1" in\n--version) echo '${version}';;\ncheck) echo '${check.out}' >&2; exit ${check.code};;\nesac\n`, { mode: 0o755 });
    return f;
  };

  it('reports a configured binary that is not there, naming it', async () => {
    const s = await probeCriu(path.join(dir, 'nowhere', 'criu'));
    assert.equal(s.available, false);
    assert.match(!s.available ? s.reason : '', /nowhere\/criu/);
  });

  it('refuses a CRIU older than the floor, and one whose check fails, in its own words', async () => {
    const old = await probeCriu(fake('Version: 3.17.1', { code: 0, out: 'Looks good.' }));
    assert.deepEqual(old.available ? null : old.reason, 'criu 3.17.1 is older than 4.0');
    const failing = await probeCriu(fake('Version: 4.1', { code: 1, out: 'Error (criu/vdso.c:123): vdso: Failed to fill self vdso symtable' }));
    assert.equal(failing.available, false);
    assert.match(!failing.available ? failing.reason : '', /^criu check: Error \(criu\/vdso\.c:123\): vdso: Failed to fill self vdso symtable$/);
    await assert.rejects(new Criu(failing.path).require('checkpoint container c1'), (e: Error) => e instanceof FailedPrecondition && /checkpoint container c1: checkpointing is unavailable on this node: criu check: Error/.test(e.message));
  });

  it('takes a CRIU 4.x that passes its check', async () => {
    const s = await probeCriu(fake('Version: 4.2', { code: 0, out: 'Looks good.' }));
    assert.deepEqual(s, { available: true, path: path.join(dir, 'criu'), version: '4.2' });
    assert.equal(await new Criu(s.path).require('x'), s.path);
  });
});
