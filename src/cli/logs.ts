// `skiff logs`: a container's output from its CRI log file (the file kubelet reads), each
// stream to where it came from. -f follows the file across ReopenContainerLog rotations
// until the container has exited; --tail N starts with the last N lines.
import * as fs from 'fs';
import * as grpc from '@grpc/grpc-js';
import { ContainerState } from '../cri/gen/cri';
import { CliFailure, Command, oneArg, UsageError } from './command';
import { resolveTarget } from './workloads';

const POLL_MS = 200;

export interface LogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  /** The line ends here (F), or continues in the next record (P). */
  full: boolean;
  content: string;
}

/** One line of the CRI log format: `<RFC 3339 time> <stdout|stderr> <P|F> <content>`. */
export function parseLogLine(line: string): LogLine | null {
  const m = /^(\S+) (stdout|stderr) ([PF])(?: (.*))?$/s.exec(line);
  return m ? { time: m[1], stream: m[2] as LogLine['stream'], full: m[3] === 'F', content: m[4] ?? '' } : null;
}

/** Turns log file bytes into writes on stdout/stderr; keeps an unfinished last line. */
class LogPrinter {
  private rest = '';
  constructor(private readonly timestamps: boolean) {}

  push(chunk: string): void {
    const text = this.rest + chunk;
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    for (const l of lines) this.print(l);
  }

  private print(raw: string): void {
    const l = parseLogLine(raw);
    if (!l) return;
    const out = l.stream === 'stderr' ? process.stderr : process.stdout;
    out.write(`${this.timestamps ? `${l.time} ` : ''}${l.content}${l.full ? '\n' : ''}`);
  }
}

/** The byte offset where the last n lines of the text begin. */
export function tailOffset(text: string, n: number): number {
  let pos = text.endsWith('\n') ? text.length - 1 : text.length;
  for (let i = 0; i < n; i++) {
    const nl = text.lastIndexOf('\n', pos - 1);
    if (nl < 0) return 0;
    pos = nl;
  }
  return Buffer.byteLength(text.slice(0, pos + 1));
}

export const LOG_COMMANDS: Record<string, Command> = {
  logs: {
    usage: 'logs [-f] [--tail N] [-t] CONTAINER',
    summary: "a container's output (-f: follow until it exits; -t: timestamps)",
    flags: { follow: { type: 'boolean', short: 'f' }, tail: { type: 'string' }, timestamps: { type: 'boolean', short: 't' } },
    async run(args, env, flags) {
      const target = await resolveTarget(env, oneArg(args, 'container id'));
      if (target.kind !== 'container') throw new UsageError(`${target.id.slice(0, 13)} is a pod: logs takes a container`);
      const tail = flags.tail === undefined ? -1 : Number(flags.tail);
      if (!Number.isInteger(tail) || tail < -1) throw new UsageError(`--tail: expected a number of lines, got "${flags.tail}"`);
      const status = async () => (await env.cri().runtime('ContainerStatus', { container_id: target.id })).status!;
      const logPath = (await status()).log_path;
      if (!logPath) throw new CliFailure(grpc.status.FAILED_PRECONDITION, `container ${target.id.slice(0, 13)} has no log file (its pod has no log directory)`);
      const printer = new LogPrinter(flags.timestamps === true);
      let fd = -1;
      let ino = 0;
      let pos = 0;
      const open = () => {
        try {
          fd = fs.openSync(logPath, 'r');
          ino = fs.fstatSync(fd).ino;
          pos = 0;
        } catch {
          fd = -1;
        }
      };
      const drain = () => {
        if (fd < 0) return;
        const buf = Buffer.alloc(1 << 16);
        for (;;) {
          const n = fs.readSync(fd, buf, 0, buf.length, pos);
          if (n <= 0) break;
          pos += n;
          printer.push(buf.subarray(0, n).toString('utf8'));
        }
      };
      open();
      if (fd < 0 && !flags.follow) throw new CliFailure(grpc.status.NOT_FOUND, `log file ${logPath} of container ${target.id.slice(0, 13)} does not exist`);
      if (fd >= 0 && tail >= 0) pos = tailOffset(fs.readFileSync(logPath, 'utf8'), tail);
      drain();
      let lastCheck = Date.now();
      while (flags.follow) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        // Rotated (ReopenContainerLog renames the file) or truncated: read the new one.
        let st: fs.Stats | null = null;
        try {
          st = fs.statSync(logPath);
        } catch {
          /* between rename and reopen */
        }
        if (st && (fd < 0 || st.ino !== ino || st.size < pos)) {
          drain();
          if (fd >= 0) fs.closeSync(fd);
          open();
        }
        drain();
        if (Date.now() - lastCheck >= 1000) {
          lastCheck = Date.now();
          if ((await status()).state === ContainerState.CONTAINER_EXITED) {
            drain();
            break;
          }
        }
      }
      if (fd >= 0) fs.closeSync(fd);
    },
  },
};
