import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readProcFile } from './proc_file';

describe('readProcFile', () => {
  it('reads a kernel file whose size says 0 whole, as readFile does', async () => {
    assert.equal(fs.statSync('/proc/self/environ').size, 0);
    assert.equal(await readProcFile('/proc/self/environ', 'latin1'), fs.readFileSync('/proc/self/environ', 'latin1'));
    assert.equal(await readProcFile('/proc/self/cmdline'), fs.readFileSync('/proc/self/cmdline', 'utf8'));
  });

  it('reads past its first 4 KiB buffer, and rejects a missing file with ENOENT', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-procfile-'));
    try {
      const text = Array.from({ length: 3000 }, (_, i) => `line ${i}`).join('\n');
      fs.writeFileSync(path.join(dir, 'big'), text);
      assert.equal(await readProcFile(path.join(dir, 'big')), text);
      await assert.rejects(readProcFile(path.join(dir, 'none')), { code: 'ENOENT' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
