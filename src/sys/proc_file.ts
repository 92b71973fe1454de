// Small kernel-made files (/proc, /sys, cgroupfs) read without Node's readFile, which
// takes their size of 0 as unknown and reads each into fresh 64 KiB buffers, twice (the
// data, then the end). A scrape or a stats call at 500 pods reads hundreds of them at
// once: that was tens of MiB of malloc'd chunks, which fragmented skiffd's C heap for
// good (it held 9 MiB more after ten /metrics scrapes at 500 pods).
import { promises as fsp } from 'fs';

/** Where a read starts: these files are a few hundred bytes to a few KiB, so one small
 * allocation (Node's pool takes only those under 4 KiB) instead of readFile's two of 64. */
const FIRST_READ = 4096;

/** The whole text of a small kernel file; rejects as readFile does (ENOENT, ...). */
export async function readProcFile(file: string, encoding: BufferEncoding = 'utf8'): Promise<string> {
  const fh = await fsp.open(file, 'r');
  try {
    let buf = Buffer.allocUnsafe(FIRST_READ);
    let len = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, len, buf.length - len, null);
      if (bytesRead === 0) return buf.toString(encoding, 0, len);
      len += bytesRead;
      if (len === buf.length) {
        const bigger = Buffer.allocUnsafe(2 * buf.length);
        buf.copy(bigger, 0, 0, len);
        buf = bigger;
      }
    }
  } finally {
    await fh.close();
  }
}

/** The fields of /proc/<pid>/stat from the state (field 3) on, so field n is [n - 3]; null
 * when the process is gone. The command name before them may hold spaces and parentheses. */
export async function readProcStat(pid: number | 'self'): Promise<string[] | null> {
  const stat = await readProcFile(`/proc/${pid}/stat`).catch(() => '');
  return stat ? stat.slice(stat.lastIndexOf(')') + 2).split(' ') : null;
}
