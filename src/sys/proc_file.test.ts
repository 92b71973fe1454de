import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readProcFile, readProcStat } from './proc_file';

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

  it('splits /proc/<pid>/stat from the state on, and is null for a process that is gone', async () => {
    const fields = await readProcStat(process.pid);
    assert.ok(fields && /^[RS]$/.test(fields[0]), String(fields?.[0]));
    assert.equal(Number(fields![4 - 3]), process.ppid, 'field 4 is the parent pid');
    assert.equal(await readProcStat(2 ** 22 + 7), null);
  });
});
