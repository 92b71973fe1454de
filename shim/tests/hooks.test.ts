// Run-wide checks: the shim is built, and nothing a suite made is left behind.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import { SHIM_BINARY, cleanupRun, leakedCgroups } from './fixtures';

before(function () {
  if (process.getuid?.() !== 0) throw new Error('the shim suites run real containers: run them as root');
  assert.ok(fs.existsSync(SHIM_BINARY), `${SHIM_BINARY} missing: run make -C shim`);
});

after(function () {
  const leaked = leakedCgroups();
  cleanupRun();
  assert.deepEqual(leaked, [], 'container cgroups left behind');
});
