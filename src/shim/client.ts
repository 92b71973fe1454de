// ShimClient: the only module that talks to a skiff-shim socket. JSON-line
// requests and responses, exit events, and frame-mode streams for attach and
// exec, as api/shim/PROTOCOL.md describes.
import { execFile } from 'child_process';
import { EventEmitter } from 'events';
import * as net from 'net';
import * as path from 'path';
import { CodedError, GrpcCode, Unavailable } from '../errors';
import type { IdMapping, LinuxCapabilities, LinuxResources, Process } from '../oci/runtime_spec';

// Responses can be large: a sync exec returns up to 2 x 16 MiB, base64-encoded.
const MAX_LINE = 64 * 1024 * 1024;
const MAX_FRAME = 1024 * 1024;

export type ShimErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'DEADLINE_EXCEEDED'
  | 'RESOURCE_EXHAUSTED'
  | 'INTERNAL';

/** An error the shim answered with; its code becomes the CRI call's status. */
export class ShimError extends Error implements CodedError {
  readonly grpcStatus: GrpcCode;
  constructor(
    readonly code: ShimErrorCode,
    message: string,
    readonly errno: number,
  ) {
    super(message);
    this.name = 'ShimError';
    this.grpcStatus = GrpcCode[code] ?? GrpcCode.INTERNAL;
  }
}

/** The shim went away (killed, crashed, or shut down) before answering: UNAVAILABLE, as
 * for any server that is gone, not INTERNAL. */
export class ShimLostError extends Unavailable {
  constructor(message = 'connection to skiff-shim lost') {
    super(message);
  }
}

export interface ExitInfo {
  id: string;
  pid: number;
  exitCode: number;
  signal: number;
  exitedAt: string;
  exitedAtNs: number;
  oomKilled: boolean;
  reason: string;
}

export type ContainerStatus = 'created' | 'running' | 'stopped';

export interface ContainerState {
  id: string;
  pid: number;
  status: ContainerStatus;
  bundle: string;
  createdAt: string;
  startedAt: string;
  exit: ExitInfo | null;
}

export type NsMode = 'new' | 'host';
export type NamespaceName = 'net' | 'ipc' | 'uts' | 'pid' | 'user';

export interface PodParams {
  hostname?: string;
  network?: NsMode;
  ipc?: NsMode;
  uts?: NsMode;
  pid?: NsMode;
  userns?: { uidMappings: IdMapping[]; gidMappings: IdMapping[] } | null;
  sysctls?: Record<string, string>;
  /** The infra process's cgroup. */
  cgroupsPath?: string;
  /** A pod cgroup for the shim to make with these limits, and remove at shutdown. */
  podCgroup?: { path: string; resources: LinuxResources };
}

export interface PodResult {
  pid: number;
  namespaces: Partial<Record<NamespaceName, string>>;
}

export interface PodInfo extends PodResult {
  hostname: string;
  infraExited?: boolean;
}

export interface CreateParams {
  id: string;
  bundle: string;
  logPath?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
}

/** What exec runs: an OCI process of which the shim needs only args. A field or capability
 * set left out is not applied: without user, env and cwd the process runs as root, with no
 * environment, in "/". */
export type ExecProcess = Pick<Process, 'args'> & Partial<Omit<Process, 'capabilities'>> & { capabilities?: Partial<LinuxCapabilities> };

export interface ExecSyncResult {
  exitCode: number;
  signal: number;
  timedOut: boolean;
  stdout: Buffer;
  stderr: Buffer;
  truncated: boolean;
}

export interface CgroupStats {
  timestamp: number;
  cpu: { usageNs: number; userNs: number; systemNs: number };
  memory: {
    usageBytes: number;
    workingSetBytes: number;
    limitBytes: number | null;
    rssBytes: number;
    pageFaults: number;
    majorPageFaults: number;
    /** Page cache (v1 total_cache, v2 file). */
    cacheBytes: number;
    oomKills: number;
  };
  pids: { current: number; limit: number | null };
  /** null when the host does not account swap. */
  swap: { usageBytes: number; limitBytes: number | null } | null;
  /** Pressure (PSI) from the cgroup's cgroup2 dir; null where it has none or the kernel
   * offers no PSI. Absent from shims started before it was added (they outlive skiffd). */
  psi?: { cpu: Pressure | null; memory: Pressure | null; io: Pressure | null } | null;
  /** Per-device IO from io.stat (v2) or blkio throttle files (v1); null where neither. */
  io?: { devices: BlockDeviceIo[] } | null;
}

/** One *.pressure file: percentages and microseconds, as the kernel writes them. */
export interface Pressure {
  some: PressureLine;
  /** null where the file has no "full" line (cpu before Linux 5.13). */
  full: PressureLine | null;
}

export interface PressureLine {
  avg10: number;
  avg60: number;
  avg300: number;
  totalUs: number;
}

export interface BlockDeviceIo {
  major: number;
  minor: number;
  readBytes: number;
  writeBytes: number;
  reads: number;
  writes: number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  /** A successful answer switches the connection to frames. */
  thenFrames: boolean;
}

export enum FrameType {
  Stdin = 0,
  Stdout = 1,
  Stderr = 2,
  Resize = 3,
  CloseStdin = 4,
  Exit = 5,
}

/** Splits a byte stream into JSON lines, then (after switch) into frames. */
class Connection extends EventEmitter {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  // Frame mode starts as soon as the answer to attach/exec is read (the frames
  // may follow in the same chunk); they are parsed once a consumer is ready.
  private framing = false;
  private framesActive = false;
  private closed = false;
  private closeHeld = false;

  constructor(readonly socket: net.Socket) {
    super();
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => this.onClose());
    socket.on('error', () => {
      /* 'close' follows and reports it */
    });
  }

  request<T>(method: string, params?: object, thenFrames = false): Promise<T> {
    if (this.closed) return Promise.reject(new ShimLostError());
    const id = this.nextId++;
    const line = JSON.stringify({ id, method, params: params ?? {} }) + '\n';
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, thenFrames });
      this.socket.write(line);
    });
  }

  /** The frame consumer is listening: deliver frames from now on. */
  startFrames(): void {
    this.framesActive = true;
    this.parseFrames();
    if (this.closeHeld) {
      this.closeHeld = false;
      this.emit('close');
    }
  }

  sendFrame(type: FrameType, payload: Buffer): void {
    if (this.closed) return;
    for (let off = 0; off < payload.length || off === 0; off += MAX_FRAME) {
      const chunk = payload.subarray(off, off + MAX_FRAME);
      const hdr = Buffer.alloc(5);
      hdr[0] = type;
      hdr.writeUInt32BE(chunk.length, 1);
      this.socket.write(Buffer.concat([hdr, chunk]));
      if (payload.length === 0) break;
    }
  }

  close(): void {
    this.socket.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // Incoming bytes are kept as a list of chunks and joined only when a whole
  // line or frame is there: a 40 MiB answer must not be re-copied per chunk.
  private chunks: Buffer[] = [];
  private chunksLen = 0;

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.chunksLen);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.chunksLen = rest.length;
    return out;
  }

  private onData(d: Buffer): void {
    this.chunks.push(d);
    this.chunksLen += d.length;
    if (this.framing) return this.parseFrames();
    // Only the new chunk can hold the end of the pending line.
    let searchFrom = this.chunksLen - d.length;
    for (;;) {
      const last = this.chunks[this.chunks.length - 1];
      const base = this.chunksLen - (last ? last.length : 0);
      const nlInLast = last ? last.indexOf(0x0a, Math.max(0, searchFrom - base)) : -1;
      if (nlInLast < 0) {
        if (this.chunksLen > MAX_LINE) this.socket.destroy(new Error('line from shim too long'));
        return;
      }
      const line = this.take(base + nlInLast + 1).subarray(0, base + nlInLast).toString('utf8');
      searchFrom = 0;
      this.onLine(line);
      if (this.framing) return this.parseFrames();
      if (this.chunksLen === 0) return;
    }
  }

  private onLine(line: string): void {
    let msg: { id?: number; result?: unknown; error?: { code: ShimErrorCode; message: string; errno: number }; event?: string; params?: unknown };
    try {
      msg = JSON.parse(line);
    } catch {
      this.socket.destroy(new Error('malformed line from shim'));
      return;
    }
    if (msg.event) {
      this.emit('event', msg.event, msg.params);
      return;
    }
    const p = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
    if (!p) return;
    this.pending.delete(msg.id as number);
    if (msg.error) {
      p.reject(new ShimError(msg.error.code, msg.error.message, msg.error.errno));
      return;
    }
    if (p.thenFrames) this.framing = true;
    p.resolve(msg.result ?? {});
  }

  private parseFrames(): void {
    while (this.framesActive && this.chunksLen >= 5) {
      const head = this.chunks[0].length >= 5 ? this.chunks[0] : Buffer.concat(this.chunks, this.chunksLen);
      const len = head.readUInt32BE(1);
      if (len > MAX_FRAME) {
        this.socket.destroy(new Error('frame from shim too large'));
        return;
      }
      if (this.chunksLen < 5 + len) return;
      const frame = this.take(5 + len);
      this.emit('frame', frame[0] as FrameType, frame.subarray(5));
    }
  }

  private onClose(): void {
    this.closed = true;
    const err = new ShimLostError();
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    // Frames still held for a consumer (a fast exec's output and exit, then the shim's
    // close, all in one read) come first: 'close' waits for startFrames.
    if (this.framing && !this.framesActive) this.closeHeld = true;
    else this.emit('close');
  }
}

/** A stream session: attach to a container's stdio, or a streaming exec.
 * Add 'stdout'/'stderr' listeners as soon as you get it: output is delivered
 * from the next turn of the event loop on. */
export class ShimStream extends EventEmitter {
  /** Resolves with the exit of the process (exec) or the container (attach);
   * null if the stream closed without one (client closed, shim lost). */
  readonly exited: Promise<ExitInfo | null>;
  readonly pid: number;

  constructor(
    private readonly conn: Connection,
    pid: number,
  ) {
    super();
    this.pid = pid;
    let done: (e: ExitInfo | null) => void = () => undefined;
    this.exited = new Promise((resolve) => (done = resolve));
    conn.on('frame', (type: FrameType, payload: Buffer) => {
      if (type === FrameType.Stdout) this.emit('stdout', payload);
      else if (type === FrameType.Stderr) this.emit('stderr', payload);
      else if (type === FrameType.Exit && payload.length) done(JSON.parse(payload.toString('utf8')) as ExitInfo);
    });
    conn.on('close', () => {
      done(null);
      this.emit('close');
    });
  }

  write(data: Buffer | string): void {
    this.conn.sendFrame(FrameType.Stdin, Buffer.isBuffer(data) ? data : Buffer.from(data));
  }

  resize(width: number, height: number): void {
    this.conn.sendFrame(FrameType.Resize, Buffer.from(JSON.stringify({ width, height })));
  }

  closeStdin(): void {
    this.conn.sendFrame(FrameType.CloseStdin, Buffer.alloc(0));
  }

  close(): void {
    this.conn.close();
  }
}

export interface ShimClientEvents {
  exit: (exit: ExitInfo) => void;
  lost: () => void;
}

export declare interface ShimClient {
  on<E extends keyof ShimClientEvents>(event: E, listener: ShimClientEvents[E]): this;
  once<E extends keyof ShimClientEvents>(event: E, listener: ShimClientEvents[E]): this;
  emit<E extends keyof ShimClientEvents>(event: E, ...args: Parameters<ShimClientEvents[E]>): boolean;
}

function connectSocket(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath);
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export interface SpawnOptions {
  binary: string;
  stateDir: string;
  socketPath?: string;
  /** Extra environment (failpoints of tests). */
  env?: Record<string, string>;
}

export class ShimClient extends EventEmitter {
  private closing = false;

  private constructor(
    readonly socketPath: string,
    private readonly conn: Connection,
  ) {
    super();
    conn.on('event', (name: string, params: unknown) => {
      if (name === 'exit') this.emit('exit', params as ExitInfo);
    });
    conn.on('close', () => {
      if (!this.closing) this.emit('lost');
    });
  }

  /** Start a shim (it detaches and exits 0 once it serves), then connect. */
  static spawn(opts: SpawnOptions): Promise<ShimClient> {
    const socketPath = opts.socketPath ?? path.join(opts.stateDir, 'shim.sock');
    const args = ['--state-dir', opts.stateDir];
    if (opts.socketPath) args.push('--socket', opts.socketPath);
    return new Promise((resolve, reject) => {
      execFile(opts.binary, args, { timeout: 30_000, env: opts.env ? { ...process.env, ...opts.env } : undefined }, (err, _stdout, stderr) => {
        if (err) {
          reject(new Error(`skiff-shim failed to start: ${stderr.trim() || err.message}`));
          return;
        }
        ShimClient.connect(socketPath).then(resolve, reject);
      });
    });
  }

  static async connect(socketPath: string): Promise<ShimClient> {
    return new ShimClient(socketPath, new Connection(await connectSocket(socketPath)));
  }

  close(): void {
    this.closing = true;
    this.conn.close();
  }

  get connected(): boolean {
    return !this.conn.isClosed;
  }

  version(): Promise<{ protocol: number; version: string; pid: number }> {
    return this.conn.request('version');
  }

  pod(params: PodParams): Promise<PodResult> {
    return this.conn.request('pod', params);
  }

  create(params: CreateParams): Promise<{ pid: number }> {
    return this.conn.request('create', params);
  }

  start(p: { id: string }): Promise<{ pid: number }> {
    return this.conn.request('start', p);
  }

  state(p: { id: string }): Promise<ContainerState> {
    return this.conn.request('state', p);
  }

  list(): Promise<{ pod: PodInfo | null; containers: ContainerState[] }> {
    return this.conn.request('list');
  }

  /** Resolves when the container has exited (at once if it already has). */
  wait(p: { id: string }): Promise<ExitInfo> {
    return this.conn.request('wait', p);
  }

  kill(p: { id: string; signal?: number; all?: boolean }): Promise<void> {
    return this.done('kill', p);
  }

  delete(p: { id: string; force?: boolean }): Promise<void> {
    return this.done('delete', p);
  }

  async execSync(p: { id: string; process: ExecProcess; timeoutMs?: number }): Promise<ExecSyncResult> {
    const r = await this.conn.request<{
      exitCode: number;
      signal: number;
      timedOut: boolean;
      stdout: string;
      stderr: string;
      truncated: boolean;
    }>('exec', { ...p, sync: true });
    return { ...r, stdout: Buffer.from(r.stdout, 'base64'), stderr: Buffer.from(r.stderr, 'base64') };
  }

  /** A streaming exec on a dedicated connection. */
  async exec(p: { id: string; process: ExecProcess; stdin?: boolean }): Promise<ShimStream> {
    return this.openStream('exec', p);
  }

  /** Attach to a container's stdio on a dedicated connection. */
  async attach(p: { id: string; stdin?: boolean; stdout?: boolean; stderr?: boolean }): Promise<ShimStream> {
    return this.openStream('attach', p);
  }

  resize(p: { id: string; width: number; height: number }): Promise<void> {
    return this.done('resize', p);
  }

  closeStdin(p: { id: string }): Promise<void> {
    return this.done('closeStdin', p);
  }

  reopenLog(p: { id: string }): Promise<void> {
    return this.done('reopenLog', p);
  }

  update(p: { id: string; resources: LinuxResources }): Promise<void> {
    return this.done('update', p);
  }

  /** New limits for the pod cgroup this shim made (PodParams.podCgroup); all or nothing. */
  updatePod(p: { resources: LinuxResources }): Promise<void> {
    return this.done('updatePod', p);
  }

  stats(p: { id: string }): Promise<CgroupStats> {
    return this.conn.request('stats', p);
  }

  /** Stats of the pod cgroup (podCgroup, or the parent of the infra's cgroup). */
  podStats(): Promise<CgroupStats> {
    return this.conn.request('podStats', {});
  }

  private done(method: string, params: object): Promise<void> {
    return this.conn.request<object>(method, params).then(() => undefined);
  }

  private async openStream(method: 'exec' | 'attach' | 'portForward', params: object): Promise<ShimStream> {
    const conn = new Connection(await connectSocket(this.socketPath));
    try {
      const r = await conn.request<{ pid?: number }>(method, params, true);
      const s = new ShimStream(conn, r.pid ?? 0);
      // Deliver frames once the caller, resumed by this return, has added its
      // 'stdout'/'stderr' listeners.
      setImmediate(() => conn.startFrames());
      return s;
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  /**
   * A TCP connection to 127.0.0.1:port in the pod's network namespace (the host's for
   * a host-network pod), as a stream: write() sends, 'stdout' receives, closeStdin()
   * half-closes; `exited` resolves when the connection ends.
   */
  portForward(p: { port: number }): Promise<ShimStream> {
    return this.openStream('portForward', p);
  }

  /** Receive exit events on this connection ('exit'). */
  subscribe(): Promise<void> {
    return this.done('subscribe', {});
  }

  /** Kill every container and the pod; resolves once the shim has closed the
   * connection (it exits right after answering). */
  async shutdown(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => {
      if (this.conn.isClosed) resolve();
      else this.conn.once('close', () => resolve());
    });
    await this.conn.request('shutdown');
    await closed;
  }
}

