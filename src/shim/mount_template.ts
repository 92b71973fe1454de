// The node's mount template (api/shim/PROTOCOL.md, "The container's mount namespace"): a
// mount namespace holding only a read-only tmpfs, from which every container's is copied
// instead of the host's table (every pod's shm, netns and rootfs mounts). Made once by
// `skiff-shim --mount-template`, held here as an fd and passed to each new shim, so no pod
// pays a pass over the host's table for it; a shim given none makes its own. Nothing of
// it is on the host: it lives while skiffd or a shim holds it, and a restarted skiffd
// makes another.
import { spawn } from 'child_process';
import * as fs from 'fs';

const RETRY_MS = 60_000;
const TIMEOUT_MS = 30_000;

export class MountTemplate {
  private fd: Promise<number> | undefined;
  private failedAt = 0;
  /** Why the last attempt failed, if it did. */
  lastError: string | undefined;

  /** The template's fd, or undefined if it cannot be made (tried again after a minute). */
  async get(binary: string, dir: string): Promise<number | undefined> {
    if (!this.fd && Date.now() - this.failedAt >= RETRY_MS) {
      this.fd = makeTemplate(binary, dir);
      this.fd.catch((e: Error) => {
        this.fd = undefined;
        this.failedAt = Date.now();
        this.lastError = e.message;
      });
    }
    return this.fd?.catch(() => undefined);
  }
}

/** Run the shim's template maker in `dir` (any directory: its tmpfs is mounted there in
 * the maker's own namespace only) and open the namespace it made. */
function makeTemplate(binary: string, dir: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['--mount-template', dir], { stdio: ['pipe', 'pipe', 'pipe'], timeout: TIMEOUT_MS });
    let out = '';
    let err = '';
    let fd: number | undefined;
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (fd !== undefined || !out.includes('\n')) return;
      // A plain fd, kept for skiffd's life (a FileHandle would be closed when collected).
      fs.open(`/proc/${Number(out.trim())}/ns/mnt`, 'r', (e, opened) => {
        if (e) err ||= e.message;
        else fd = opened;
        child.stdin.end();
      });
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('error', (e) => reject(e));
    child.on('close', (code) => {
      if (code === 0 && fd !== undefined) return resolve(fd);
      if (fd !== undefined) fs.close(fd, () => undefined);
      reject(new Error(`skiff-shim --mount-template: ${err.trim() || `exited with ${String(code)}`}`));
    });
  });
}
