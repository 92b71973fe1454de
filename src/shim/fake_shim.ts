// A stand-in for the connection to a pod's shim, for the lifecycle services' unit tests (as
// youki tests its namespace logic against a fake Syscall): it answers as a shim does, keeps
// its containers' states, records every call in order, and fails the calls a test names.
import { EventEmitter } from 'events';
import { ContainerState, CreateParams, ExitInfo, PodParams, PodResult, ShimClient, ShimError } from './client';

export class FakeShim extends EventEmitter {
  /** Methods that fail, with the error they throw. */
  readonly failing = new Map<string, Error>();
  readonly containers = new Map<string, ContainerState>();
  /** What pod() was asked for. */
  podParams?: PodParams;
  connected = true;
  /** Shut down (a real shim exits then): it no longer answers a connect. */
  down = false;
  /** A container killed with a signal in this set exits (the signals its program handles). */
  readonly exitsOn = new Set<number>([9]);
  private nextPid = 1000;
  private readonly waiters = new Map<string, ((e: ExitInfo) => void)[]>();

  /** Every call goes to `calls`, as "shim <method>" or "shim <method> <container id> [signal]"
   * (a test may share the list with its other fakes, to see the order of everything). */
  constructor(
    readonly calls: string[] = [],
    readonly podPid = 4242,
  ) {
    super();
  }

  /** The fake as the services hold it. */
  get client(): ShimClient {
    return this as unknown as ShimClient;
  }

  private async call<T>(method: string, detail: string, answer: () => T | Promise<T>): Promise<T> {
    this.calls.push(detail ? `shim ${method} ${detail}` : `shim ${method}`);
    await new Promise((r) => setImmediate(r));
    const e = this.failing.get(method);
    if (e) throw e;
    return answer();
  }

  subscribe(): Promise<void> {
    return this.call('subscribe', '', () => undefined);
  }

  pod(p: PodParams): Promise<PodResult> {
    this.podParams = p;
    const ns = (t: string) => `/proc/${this.podPid}/ns/${t}`;
    return this.call('pod', '', () => ({ pid: this.podPid, namespaces: { net: ns('net'), ipc: ns('ipc'), uts: ns('uts') } }));
  }

  updatePod(_p: { resources: object }): Promise<void> {
    return this.call('updatePod', '', () => undefined);
  }

  create(p: CreateParams): Promise<{ pid: number }> {
    return this.call('create', p.id, () => {
      const pid = this.nextPid++;
      this.containers.set(p.id, { id: p.id, pid, status: 'created', bundle: p.bundle, createdAt: '', startedAt: '', exit: null });
      return { pid };
    });
  }

  start(p: { id: string }): Promise<{ pid: number }> {
    return this.call('start', p.id, () => {
      const c = this.must(p.id);
      c.status = 'running';
      return { pid: c.pid };
    });
  }

  kill(p: { id: string; signal?: number; all?: boolean }): Promise<void> {
    return this.call('kill', `${p.id} ${p.signal ?? 15}`, () => {
      const c = this.must(p.id);
      if (c.status !== 'stopped' && this.exitsOn.has(p.signal ?? 15)) this.exit(p.id, 128 + (p.signal ?? 15));
    });
  }

  /** Resolves when the container has exited. */
  wait(p: { id: string }): Promise<ExitInfo> {
    return this.call('wait', p.id, () => {
      const c = this.must(p.id);
      if (c.exit) return c.exit;
      return new Promise<ExitInfo>((resolve) => this.waiters.set(p.id, [...(this.waiters.get(p.id) ?? []), resolve]));
    });
  }

  delete(p: { id: string; force?: boolean }): Promise<void> {
    return this.call('delete', p.id, () => {
      this.must(p.id);
      this.containers.delete(p.id);
    });
  }

  list(): Promise<{ pod: null; containers: ContainerState[] }> {
    return this.call('list', '', () => ({ pod: null, containers: [...this.containers.values()] }));
  }

  /** What shutdown answers: a real shim says whether it removed every cgroup it made. */
  cgroupsRemovedAtShutdown = false;

  shutdown(): Promise<{ cgroupsRemoved: boolean }> {
    return this.call('shutdown', '', () => {
      this.down = true;
      this.connected = false;
      return { cgroupsRemoved: this.cgroupsRemovedAtShutdown };
    });
  }

  close(): void {
    this.calls.push('shim close');
  }

  /** The container's process exits: recorded, sent as an event, and waiters are told. */
  exit(id: string, exitCode: number): ExitInfo {
    const c = this.must(id);
    const e: ExitInfo = { id, pid: c.pid, exitCode, signal: 0, exitedAt: new Date().toISOString(), exitedAtNs: Date.now() * 1e6, oomKilled: false, reason: '' };
    c.status = 'stopped';
    c.exit = e;
    for (const w of this.waiters.get(id) ?? []) w(e);
    this.waiters.delete(id);
    this.emit('exit', e);
    return e;
  }

  /** The connection breaks (the shim was killed). */
  lose(): void {
    this.connected = false;
    this.emit('lost');
  }

  private must(id: string): ContainerState {
    const c = this.containers.get(id);
    if (!c) throw new ShimError('NOT_FOUND', `container ${id} not found`, 2);
    return c;
  }
}
