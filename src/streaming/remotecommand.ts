// The remote command protocol of Kubernetes (exec and attach), independent of the
// transport: stdin/stdout/stderr/resize channels and the error channel's final status,
// in the form each protocol version expects (v4+: a JSON metav1.Status with the exit
// code as kubectl reads it; v1-v3: plain text on failure).
import { EventEmitter } from 'events';
import type { ExitInfo, ShimStream } from '../shim/client';

export const REMOTECOMMAND_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'] as const;
export type RemoteCommandProtocol = (typeof REMOTECOMMAND_PROTOCOLS)[number];

export interface Sink {
  write(data: Buffer): void;
  end(): void;
}

/** A transport's channels for one exec or attach session. */
export interface RemoteCommandChannels {
  stdin?: { on(event: 'data', cb: (d: Buffer) => void): void; on(event: 'end', cb: () => void): void };
  stdout?: Sink;
  stderr?: Sink;
  /** Terminal size changes from the client. */
  onResize?: (cb: (width: number, height: number) => void) => void;
  /** Writes the final status (or nothing) to the error channel. */
  error: Sink;
  /** Releases input held until the session is joined (see InputQueue). */
  startInput?: () => void;
  /** Called when the client goes away. */
  onClientGone(cb: () => void): void;
  /** Ends every channel and the connection. */
  close(): void;
}

/** The error-channel bytes for how the command ended, or null for nothing. */
export function statusBytes(protocol: RemoteCommandProtocol, outcome: { exit: ExitInfo | null; what: string }): Buffer | null {
  const code = outcome.exit ? outcome.exit.exitCode : null;
  const modern = protocol === 'v4.channel.k8s.io' || protocol === 'v5.channel.k8s.io';
  if (code === 0) return modern ? Buffer.from(JSON.stringify({ metadata: {}, status: 'Success' })) : null;
  if (code === null) {
    const message = `${outcome.what}: the stream ended without an exit status`;
    return Buffer.from(modern ? JSON.stringify({ metadata: {}, status: 'Failure', message, reason: 'InternalError' }) : message);
  }
  const message = `command terminated with non-zero exit code: error executing command ${outcome.what}, exit code ${code}`;
  if (!modern) return Buffer.from(message);
  return Buffer.from(
    JSON.stringify({
      metadata: {},
      status: 'Failure',
      message,
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
    }),
  );
}

/** Input from the client (stdin, resize), held from its first byte until the session
 * is joined to the process, then delivered in order. */
export class InputQueue extends EventEmitter {
  private queue: (Buffer | null)[] | null = [];
  push(d: Buffer): void {
    if (this.queue) this.queue.push(d);
    else this.emit('data', d);
  }
  end(): void {
    if (this.queue) this.queue.push(null);
    else this.emit('end');
  }
  /** Start delivering: what was queued first. */
  flow(): void {
    const q = this.queue ?? [];
    this.queue = null;
    for (const d of q) {
      if (d) this.emit('data', d);
      else this.emit('end');
    }
  }
}

/** Splits the resize channel's concatenated JSON objects ({"Width":..,"Height":..}). */
export function resizeParser(cb: (width: number, height: number) => void): (d: Buffer) => void {
  let buf = '';
  return (d) => {
    buf += d.toString('utf8');
    for (;;) {
      const end = buf.indexOf('}');
      if (end < 0) return;
      const obj = buf.slice(0, end + 1);
      buf = buf.slice(end + 1);
      try {
        const { Width, Height } = JSON.parse(obj.slice(obj.indexOf('{'))) as { Width?: number; Height?: number };
        if (Number.isInteger(Width) && Number.isInteger(Height) && Width! > 0 && Height! > 0 && Width! < 65536 && Height! < 65536) cb(Width!, Height!);
      } catch {
        /* a malformed size is ignored, as kubelet does */
      }
    }
  };
}

/**
 * Join a shim stream (exec or attach) to a transport's channels until the process
 * exits or the client leaves; the final status goes to the error channel.
 */
export async function pipeSession(s: ShimStream, ch: RemoteCommandChannels, protocol: RemoteCommandProtocol, what: string): Promise<void> {
  let clientGone = false;
  s.on('stdout', (d: Buffer) => ch.stdout?.write(d));
  s.on('stderr', (d: Buffer) => (ch.stderr ?? ch.stdout)?.write(d));
  ch.stdin?.on('data', (d) => s.write(d));
  ch.stdin?.on('end', () => s.closeStdin());
  ch.onResize?.((w, h) => s.resize(w, h));
  ch.startInput?.();
  ch.onClientGone(() => {
    clientGone = true;
    s.close();
  });
  const exit = await s.exited;
  if (clientGone) return;
  const status = statusBytes(protocol, { exit, what });
  if (status) ch.error.write(status);
  ch.close();
}
