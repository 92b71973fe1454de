// The CLI's checkpoint and restore: `skiff checkpoint CONTAINER FILE` writes a running
// container's checkpoint archive (it keeps running); `skiff restore FILE` makes a new pod
// and restores the archive's container in it. Each step is shown on stderr as it goes.
import { randomUUID } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { CONFIG_DUMP, readArchiveFiles } from '../checkpoint/archive';
import type { ConfigDump } from '../checkpoint/checkpoint_service';
import type { ContainerConfig, PodSandboxConfig } from '../cri/gen/cri';
import type { Reply } from '../cri/server';
import { Command, Env, oneArg, UsageError } from './command';
import { humanSize, print } from './output';
import { resolveTarget } from './workloads';

/** Steps on stderr: each names what it does, ticks its seconds on a terminal, and ends
 * with how long it took. */
class Progress {
  private readonly started = Date.now();

  async step<T>(what: string, work: Promise<T>): Promise<T> {
    const t0 = Date.now();
    const tty = process.stderr.isTTY;
    const line = () => `${what}... ${((Date.now() - t0) / 1000).toFixed(1)} s`;
    if (!tty) process.stderr.write(`${what}...\n`);
    const timer = tty ? setInterval(() => process.stderr.write(`\r${line()}`), 200) : undefined;
    try {
      const r = await work;
      if (tty) process.stderr.write(`\r\x1b[K${what}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      return r;
    } catch (e) {
      if (tty) process.stderr.write(`\r\x1b[K${what}: failed\n`);
      throw e;
    } finally {
      clearInterval(timer);
    }
  }

  get seconds(): string {
    return ((Date.now() - this.started) / 1000).toFixed(1);
  }
}

const TIMEOUT_FLAG = { timeout: { type: 'string' as const } };

function timeoutSeconds(v: string | boolean | undefined): number {
  if (v === undefined) return 0;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n <= 0) throw new UsageError(`--timeout: a whole number of seconds, got "${String(v)}"`);
  return n;
}

async function checkpoint(args: string[], env: Env, timeoutS: number): Promise<void> {
  if (args.length !== 2) throw new UsageError(`expected CONTAINER FILE, got ${args.length} arguments`);
  const target = await resolveTarget(env, args[0]);
  if (target.kind !== 'container') throw new UsageError(`${args[0]} is a pod, not a container`);
  const location = path.resolve(args[1]);
  const progress = new Progress();
  const wait = (timeoutS || 300) * 1000 + 60_000;
  await progress.step(`checkpoint container ${target.id.slice(0, 13)} to ${location}`, env.cri().runtime('CheckpointContainer', { container_id: target.id, location, timeout: timeoutS }, { timeoutMs: wait }));
  const size = fs.statSync(location).size;
  print(env.output, { container: target.id, location, bytes: size }, () => `checkpointed ${target.id.slice(0, 13)} (still running) into ${location}: ${humanSize(size)} in ${progress.seconds} s\n`);
}

async function restore(file: string, env: Env, podName: string | undefined, logDir: string): Promise<void> {
  const archive = path.resolve(file);
  const progress = new Progress();
  const dump = await progress.step(`read ${archive}`, readArchiveFiles({ tar: archive }, [CONFIG_DUMP]).then((f) => {
    const data = f.get(CONFIG_DUMP);
    if (!data) throw new UsageError(`${archive} is not a container checkpoint archive: it has no ${CONFIG_DUMP}`);
    return JSON.parse(data.toString('utf8')) as Partial<ConfigDump>;
  }));
  const ctrName = dump.containerConfig?.metadata?.name || dump.name || 'restored';
  const name = podName ?? `${dump.podName || ctrName}-restored`;
  const namespace = dump.podNamespace || 'default';
  const uid = randomUUID();
  const podConfig: Reply<PodSandboxConfig> = {
    metadata: { name, namespace, uid, attempt: 0 },
    hostname: dump.podName || name,
    log_directory: path.join(path.resolve(logDir), `${namespace}_${name}_${uid}`),
    linux: {},
  };
  const podId = (await progress.step(`run pod ${namespace}/${name}`, env.cri().runtime('RunPodSandbox', { config: podConfig }))).pod_sandbox_id;
  try {
    const config: Reply<ContainerConfig> = {
      ...(dump.containerConfig as Reply<ContainerConfig> | undefined),
      metadata: { name: ctrName, attempt: 0 },
      image: { image: archive },
      log_path: `${ctrName}/0.log`,
    };
    const containerId = (
      await progress.step(`create container ${ctrName} from the archive (image, writable layer)`, env.cri().runtime('CreateContainer', { pod_sandbox_id: podId, config, sandbox_config: podConfig }, { timeoutMs: 10 * 60_000 }))
    ).container_id;
    await progress.step('restore its processes (CRIU)', env.cri().runtime('StartContainer', { container_id: containerId }, { timeoutMs: 10 * 60_000 }));
    print(env.output, { pod: podId, container: containerId }, () => `restored ${ctrName} in pod ${namespace}/${name}: container ${containerId.slice(0, 13)}, pod ${podId.slice(0, 13)}, in ${progress.seconds} s\n`);
  } catch (e) {
    // The pod was made for this restore only: it goes with it.
    await env.cri().runtime('StopPodSandbox', { pod_sandbox_id: podId }).catch(() => undefined);
    await env.cri().runtime('RemovePodSandbox', { pod_sandbox_id: podId }).catch(() => undefined);
    throw e;
  }
}

export const CHECKPOINT_COMMANDS: Record<string, Command> = {
  checkpoint: {
    usage: 'checkpoint [--timeout S] CONTAINER FILE',
    summary: 'write a running container\'s checkpoint archive (CRIU); it keeps running',
    flags: TIMEOUT_FLAG,
    run: (args, env, flags) => checkpoint(args, env, timeoutSeconds(flags.timeout)),
  },
  restore: {
    usage: 'restore [--pod-name NAME] [--log-dir DIR] FILE',
    summary: 'restore a checkpoint archive\'s container, running on, in a new pod (logs under DIR, /var/log/pods by default)',
    flags: { 'pod-name': { type: 'string' }, 'log-dir': { type: 'string' } },
    run: (args, env, flags) =>
      restore(oneArg(args, 'checkpoint archive'), env, typeof flags['pod-name'] === 'string' ? flags['pod-name'] : undefined, typeof flags['log-dir'] === 'string' ? flags['log-dir'] : '/var/log/pods'),
  },
};
