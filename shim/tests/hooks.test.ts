// Run-wide check: the shim is built. (fixtures.ts removes what the run made.)
import assert from 'node:assert/strict';
import * as fs from 'fs';
import { SHIM_BINARY } from './fixtures';

before(function () {
  if (process.getuid?.() !== 0) throw new Error('the shim suites run real containers: run them as root');
  assert.ok(fs.existsSync(SHIM_BINARY), `${SHIM_BINARY} missing: run make -C shim`);
});
