// `skiff exec [-i] [-t] CONTAINER CMD...`: runs a command in a container through the CRI
// Exec call and the streaming URL it returns, over WebSocket (v5.channel.k8s.io, as kubectl
// speaks it): channel 0 stdin, 1 stdout, 2 stderr, 3 the final status, 4 terminal size,
// 255 close. With -t the local terminal is put in raw mode and its size follows the
// window. The exit code is the command's.
import * as grpc from '@grpc/grpc-js';
import type * as WsLib from 'ws';
import type { WebSocket as Ws } from 'ws';
import { CliFailure, Command, Env, UsageError } from './command';
import { resolveTarget } from './workloads';

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

/** The exit code in a channel-3 status: {"status":"Success"} or a NonZeroExitCode failure. */
export function exitCodeOf(status: string): { code: number; message?: string } {
  let s: { status?: string; message?: string; reason?: string; details?: { causes?: { reason?: string; message?: string }[] } };
  try {
    s = JSON.parse(status) as typeof s;
  } catch {
    return { code: 1, message: status };
  }
  if (s.status === 'Success') return { code: 0 };
  const exit = s.details?.causes?.find((c) => c.reason === 'ExitCode')?.message;
  if (s.reason === 'NonZeroExitCode' && exit !== undefined && /^\d+$/.test(exit)) return { code: Number(exit) };
  return { code: 1, message: s.message ?? status };
}

function parseExecArgs(args: string[]): { stdin: boolean; tty: boolean; id: string; cmd: string[] } {
  let stdin = false;
  let tty = false;
  let i = 0;
  for (; i < args.length && args[i].startsWith('-'); i++) {
    const a = args[i];
    if (a === '--') break;
    if (a === '--stdin') stdin = true;
    else if (a === '--tty') tty = true;
    else if (/^-[it]+$/.test(a)) {
      stdin ||= a.includes('i');
      tty ||= a.includes('t');
    } else throw new UsageError(`exec: unknown flag "${a}"`);
  }
  const id = args[i++];
  if (args[i] === '--') i++;
  const cmd = args.slice(i);
  if (!id || !cmd.length) throw new UsageError('exec: expected a container id and a command');
  return { stdin, tty, id, cmd };
}

async function stream(url: string, o: { stdin: boolean; tty: boolean }): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { WebSocket } = require('ws') as typeof WsLib;
  const ws: Ws = new WebSocket(url.replace(/^http/, 'ws'), ['v5.channel.k8s.io', 'v4.channel.k8s.io']);
  const input = process.stdin;
  const raw = o.tty && input.isTTY === true;
  const send = (channel: number, data: Buffer) => ws.readyState === ws.OPEN && ws.send(Buffer.concat([Buffer.from([channel]), data]));
  const resize = () => send(RESIZE, Buffer.from(JSON.stringify({ Width: process.stdout.columns ?? 80, Height: process.stdout.rows ?? 24 })));
  return new Promise<number>((resolve, reject) => {
    let result: { code: number; message?: string } | null = null;
    const cleanup = () => {
      if (raw) input.setRawMode(false);
      input.pause();
      input.removeAllListeners('data');
      process.stdout.removeListener('resize', resize);
    };
    ws.on('open', () => {
      if (o.tty) {
        resize();
        process.stdout.on('resize', resize);
      }
      if (!o.stdin) return;
      if (raw) input.setRawMode(true);
      input.on('data', (d: Buffer) => send(STDIN, d));
      input.on('end', () => {
        // v5 closes stdin on its own channel; older protocols cannot.
        if (ws.protocol === 'v5.channel.k8s.io') send(CLOSE, Buffer.from([STDIN]));
      });
      input.resume();
    });
    ws.on('message', (data: Buffer) => {
      const channel = data[0];
      const body = data.subarray(1);
      if (channel === STDOUT) process.stdout.write(body);
      else if (channel === STDERR) process.stderr.write(body);
      else if (channel === ERROR) result = exitCodeOf(body.toString());
    });
    ws.on('error', (e) => {
      cleanup();
      reject(new CliFailure(grpc.status.UNAVAILABLE, `exec stream: ${e.message}`));
    });
    ws.on('close', () => {
      cleanup();
      if (result?.message) process.stderr.write(`skiff: ${result.message}\n`);
      resolve(result?.code ?? 0);
    });
  });
}

export const EXEC_COMMANDS: Record<string, Command> = {
  exec: {
    usage: 'exec [-i] [-t] CONTAINER CMD...',
    summary: 'run a command in a container (-i: stdin, -t: terminal); exits with its code',
    raw: true,
    async run(args: string[], env: Env) {
      const o = parseExecArgs(args);
      const target = await resolveTarget(env, o.id);
      if (target.kind !== 'container') throw new UsageError(`${target.id.slice(0, 13)} is a pod: exec takes a container`);
      const { url } = await env.cri().runtime('Exec', { container_id: target.id, cmd: o.cmd, tty: o.tty, stdin: o.stdin, stdout: true, stderr: !o.tty });
      return stream(url, o);
    },
  },
};
