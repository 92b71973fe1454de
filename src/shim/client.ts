// ShimClient: the only module that talks to a skiff-shim socket. JSON-line
// requests and responses, exit events, and frame-mode streams for attach and
// exec, as api/shim/PROTOCOL.md describes.
import { EventEmitter } from 'events';
import * as net from 'net';
import { CodedError, GrpcCode, Unavailable } from '../errors';
import type { IdMapping, LinuxCapabilities, LinuxResources, Process } from '../oci/runtime_spec';
import { SpawnOptions, startShim } from './processes';

export type { SpawnOptions };

// A line can be large: a shim from before rawOutput answers a sync exec with up to
// 2 x 16 MiB of output, base64-encoded, in its line.
const MAX_LINE = 64 * 1024 * 1024;
const MAX_FRAME = 1024 * 1024;

/** The most output a sync exec returns, stdout and stderr together: what the shim keeps
 * (EXEC_SYNC_MAX_OUTPUT in shim/src/core.h), so that a CRI reply carrying it, with its
 * framing, fits the 16 MiB kubelet accepts. */
export const EXEC_SYNC_MAX_OUTPUT = 16 * 1024 * 1024 - 1024;

/** Where a sync exec's output is written, given its sizes: buffers of exactly those
 * sizes (by default new ones; the CRI reply passes views into its own encoding). */
export type ExecOutputBuffers = (stdoutBytes: number, stderrBytes: number) => { stdout: Buffer; stderr: Buffer };

const newOutputBuffers: ExecOutputBuffers = (stdoutBytes, stderrBytes) => ({ stdout: Buffer.allocUnsafe(stdoutBytes), stderr: Buffer.allocUnsafe(stderrBytes) });

// Every shim socket reads into this one buffer: reads are handled one at a time, and
// what is kept is copied out before the next. A sync exec's output goes straight into its
// buffers instead of through a new buffer per read.
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

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
  /** How it ended, a wait status (shims from before it: absent). */
  infraStatus?: number;
}

export interface CreateParams {
  id: string;
  bundle: string;
  logPath?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
  /** Restore from a checkpoint's CRIU images: start runs CRIU (see PROTOCOL.md). */
  restore?: CriuRestoreParams;
}

export interface CriuRestoreParams {
  criu: string;
  imagesDir: string;
  workDir: string;
  timeoutMs: number;
}

/** What a checkpoint wrote: the CRIU names of the init's stdio ("" where none was needed). */
export interface CheckpointResult {
  stdio: string[];
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

interface RequestOptions {
  /** A successful answer switches the connection to frames. */
  thenFrames?: boolean;
  /** A sync exec with rawOutput: its output follows the answer's line, into these. */
  output?: ExecOutputBuffers;
}

interface Pending extends RequestOptions {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** Copies the bytes that follow a raw sync exec's answer into its output buffers. */
class OutputReader {
  private part = 0;
  private off = 0;

  constructor(
    private readonly parts: Buffer[],
    readonly finish: () => void,
    readonly fail: (e: Error) => void,
  ) {}

  /** Take what belongs to the output from d; returns the rest. */
  fill(d: Buffer): Buffer {
    while (d.length > 0 && !this.full) {
      const n = d.copy(this.parts[this.part], this.off);
      this.off += n;
      d = d.subarray(n);
    }
    return d;
  }

  get full(): boolean {
    while (this.part < this.parts.length && this.off === this.parts[this.part].length) {
      this.part++;
      this.off = 0;
    }
    return this.part === this.parts.length;
  }
}

/** A sync exec's answer: sizes and raw bytes after the line, or (shims from before
 * rawOutput) base64 in it. */
interface ExecSyncAnswer {
  exitCode: number;
  signal: number;
  timedOut: boolean;
  truncated: boolean;
  stdoutBytes?: number;
  stderrBytes?: number;
  stdout: string | Buffer;
  stderr: string | Buffer;
}

export enum FrameType {
  Stdin = 0,
  Stdout = 1,
  Stderr = 2,
  Resize = 3,
  CloseStdin = 4,
  Exit = 5,
}

/** Splits a byte stream into JSON lines (a raw sync exec's output after its line), then
 * (after switch) into frames. */
class Connection extends EventEmitter {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  // Frame mode starts as soon as the answer to attach/exec is read (the frames
  // may follow in the same chunk); they are parsed once a consumer is ready.
  private framing = false;
  private framesActive = false;
  private closed = false;
  private closeHeld = false;
  private output: OutputReader | null = null;

  private constructor(readonly socket: net.Socket) {
    super();
    socket.on('close', () => this.onClose());
    socket.on('error', () => {
      /* 'close' follows and reports it */
    });
  }

  static open(socketPath: string): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const conn: Connection = new Connection(
        net.createConnection({ path: socketPath, onread: { buffer: READ_BUFFER, callback: (n: number) => (conn.onData(READ_BUFFER.subarray(0, n)), true) } }),
      );
      conn.socket.once('connect', () => {
        conn.socket.removeListener('error', reject);
        resolve(conn);
      });
      conn.socket.once('error', reject);
    });
  }

  request<T>(method: string, params?: object, opts: RequestOptions = {}): Promise<T> {
    if (this.closed) return Promise.reject(new ShimLostError());
    const id = this.nextId++;
    const line = JSON.stringify({ id, method, params: params ?? {} }) + '\n';
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...opts });
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

  // The start of a line, or frames, copied out of READ_BUFFER; joined only when a whole
  // line or frame is there: a 40 MiB answer must not be re-copied per chunk.
  private chunks: Buffer[] = [];
  private chunksLen = 0;

  private keep(d: Buffer): void {
    this.chunks.push(Buffer.from(d));
    this.chunksLen += d.length;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.chunksLen);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.chunksLen = rest.length;
    return out;
  }

  /** Bytes read into READ_BUFFER: only what is kept is copied out. */
  private onData(d: Buffer): void {
    while (d.length > 0 && !this.socket.destroyed) {
      if (this.output) {
        d = this.output.fill(d);
        if (this.output.full) {
          const done = this.output.finish;
          this.output = null;
          done();
        }
        continue;
      }
      if (this.framing) {
        this.keep(d);
        this.parseFrames();
        return;
      }
      const nl = d.indexOf(0x0a);
      if (nl < 0) {
        this.keep(d);
        if (this.chunksLen > MAX_LINE) this.socket.destroy(new Error('line from shim too long'));
        return;
      }
      const line = this.chunksLen ? Buffer.concat([...this.chunks, d.subarray(0, nl)]).toString('utf8') : d.toString('utf8', 0, nl);
      this.chunks = [];
      this.chunksLen = 0;
      d = d.subarray(nl + 1);
      this.onLine(line);
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
    const result = (msg.result ?? {}) as Partial<ExecSyncAnswer>;
    if (p.output && result.stdoutBytes !== undefined) this.readOutput(p, p.output, result);
    else p.resolve(result);
  }

  /** A raw sync exec's output follows its answer: read it into the caller's buffers. */
  private readOutput(p: Pending, into: ExecOutputBuffers, result: Partial<ExecSyncAnswer>): void {
    const { stdoutBytes: out, stderrBytes: err } = result;
    const size = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
    if (!size(out) || !size(err) || out + err > EXEC_SYNC_MAX_OUTPUT) {
      // Nothing after it can be told apart from the output: the connection is unusable.
      p.reject(new ShimError('INTERNAL', `skiff-shim announced ${out} + ${err} bytes of exec output; at most ${EXEC_SYNC_MAX_OUTPUT} in all`, 0));
      this.socket.destroy(new Error('bad exec output size from shim'));
      return;
    }
    const { stdout, stderr } = into(out, err);
    const reader = new OutputReader([stdout, stderr], () => p.resolve({ ...result, stdout, stderr }), p.reject);
    if (reader.full) reader.finish();
    else this.output = reader;
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
    this.output?.fail(err);
    this.output = null;
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
    return startShim(opts).then((socketPath) => ShimClient.connect(socketPath));
  }

  static async connect(socketPath: string): Promise<ShimClient> {
    return new ShimClient(socketPath, await Connection.open(socketPath));
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

  /** Run a process to its end and return its output, at most EXEC_SYNC_MAX_OUTPUT of
   * stdout and stderr together (`truncated` says when some was dropped). */
  async execSync(p: { id: string; process: ExecProcess; timeoutMs?: number }, into: ExecOutputBuffers = newOutputBuffers): Promise<ExecSyncResult> {
    const r = await this.conn.request<ExecSyncAnswer>('exec', { ...p, sync: true, rawOutput: true }, { output: into });
    const result = { exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, truncated: r.truncated };
    if (Buffer.isBuffer(r.stdout) && Buffer.isBuffer(r.stderr)) return { ...result, stdout: r.stdout, stderr: r.stderr };
    // A shim started before rawOutput (shims outlive skiffd): up to 16 MiB a stream, in
    // base64. Cut to the same cap, stdout first.
    const stdout = Buffer.from(r.stdout as string, 'base64');
    const stderr = Buffer.from(r.stderr as string, 'base64');
    const keepOut = Math.min(stdout.length, EXEC_SYNC_MAX_OUTPUT);
    const keepErr = Math.min(stderr.length, EXEC_SYNC_MAX_OUTPUT - keepOut);
    const out = into(keepOut, keepErr);
    stdout.copy(out.stdout, 0, 0, keepOut);
    stderr.copy(out.stderr, 0, 0, keepErr);
    return { ...result, truncated: r.truncated || keepOut + keepErr < stdout.length + stderr.length, stdout: out.stdout, stderr: out.stderr };
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

  /** Dump the running container's processes with CRIU into imagesDir; they keep running. */
  checkpoint(p: { id: string; criu: string; imagesDir: string; workDir: string; timeoutMs: number }): Promise<CheckpointResult> {
    return this.conn.request('checkpoint', p);
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
    const conn = await Connection.open(this.socketPath);
    try {
      const r = await conn.request<{ pid?: number }>(method, params, { thenFrames: true });
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
   * connection (it exits right after answering). cgroupsRemoved: every cgroup the shim
   * made is gone (false from a shim that could not remove one, or too old to say). */
  async shutdown(): Promise<{ cgroupsRemoved: boolean }> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => {
      if (this.conn.isClosed) resolve();
      else this.conn.once('close', () => resolve());
    });
    const answer = await this.conn.request<{ cgroupsRemoved?: boolean } | null>('shutdown');
    await closed;
    return { cgroupsRemoved: answer?.cgroupsRemoved === true };
  }
}

