// The CLI's commands on pods and containers: info, pods, ps, inspect (--isolation),
// stats, stop, rm. Ids may be given as unique prefixes, as with crictl.
import * as grpc from '@grpc/grpc-js';
import type { Isolation } from '../container/isolation';
import { NAMESPACES } from '../container/isolation';
import { ContainerState, PodSandboxState } from '../cri/gen/cri';
import type { Container, ContainerStats, PodSandbox } from '../cri/gen/cri';
import { CliFailure, Command, Env, forEachArg, oneArg, UsageError } from './command';
import { humanSize, print, table } from './output';

const short = (id: string) => id.slice(0, 13);

/** "3s", "5m", "2h", "4d" since a time in ns. */
function age(ns: number): string {
  const s = Math.max(0, Math.floor((Date.now() - ns / 1e6) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

const stateName = (s: ContainerState) => ({ [ContainerState.CONTAINER_CREATED]: 'Created', [ContainerState.CONTAINER_RUNNING]: 'Running', [ContainerState.CONTAINER_EXITED]: 'Exited', [ContainerState.CONTAINER_UNKNOWN]: 'Unknown' })[s] ?? 'Unknown';
const podStateName = (s: PodSandboxState) => (s === PodSandboxState.SANDBOX_READY ? 'Ready' : 'NotReady');

/** What an id (or unique prefix) names: a container or a pod. */
export async function resolveTarget(env: Env, id: string): Promise<{ kind: 'container' | 'pod'; id: string }> {
  if (!id) throw new UsageError('an empty id names nothing');
  const [ctrs, pods] = await Promise.all([env.cri().runtime('ListContainers', { filter: { id } }), env.cri().runtime('ListPodSandbox', { filter: { id } })]);
  const matches = [...ctrs.containers.map((c) => ({ kind: 'container' as const, id: c.id })), ...pods.items.map((p) => ({ kind: 'pod' as const, id: p.id }))];
  if (matches.length === 1) return matches[0];
  if (!matches.length) throw new CliFailure(grpc.status.NOT_FOUND, `no container or pod has an id starting with "${id}"`);
  throw new CliFailure(grpc.status.INVALID_ARGUMENT, `"${id}" is the start of ${matches.length} ids: ${matches.map((m) => `${m.kind} ${short(m.id)}`).join(', ')}`);
}

async function podNames(env: Env): Promise<Map<string, PodSandbox>> {
  return new Map((await env.cri().runtime('ListPodSandbox', {})).items.map((p) => [p.id, p]));
}

function parseOrText(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

function limitsText(i: Isolation): [string, string, string] {
  return [i.limits.cpus === null ? 'none' : `${+i.limits.cpus.toFixed(3)}`, i.limits.memoryBytes === null ? 'none' : humanSize(i.limits.memoryBytes), i.limits.pids === null ? 'none' : String(i.limits.pids)];
}

/** One row per container: the seven namespaces, limits, and the security settings. */
/** "apparmor:<profile>", "selinux:<label>", both, or "unconfined"; reports from a skiffd
 * before LSM support have no lsm field. */
function lsmText(i: Isolation): string {
  const parts = [i.lsm?.apparmor && `apparmor:${i.lsm.apparmor}`, i.lsm?.selinux && `selinux:${i.lsm.selinux}`].filter(Boolean);
  return parts.join(' ') || 'unconfined';
}

export function isolationTable(rows: { name: string; isolation: Isolation }[]): string {
  return table(rows, [
    { header: 'CONTAINER', value: (r) => r.name },
    ...NAMESPACES.map((n) => ({ header: n.toUpperCase(), value: (r: { isolation: Isolation }) => r.isolation.namespaces[n] })),
    { header: 'CPU', value: (r) => limitsText(r.isolation)[0] },
    { header: 'MEMORY', value: (r) => limitsText(r.isolation)[1] },
    { header: 'PIDS', value: (r) => limitsText(r.isolation)[2] },
    // A report from a skiffd before the flags has none.
    { header: 'UNBOUNDED', value: (r) => r.isolation.unbounded?.join(',') || (r.isolation.unbounded ? 'none' : '?') },
    { header: 'EXTRA CAPS', value: (r) => r.isolation.extraCapabilities.map((c) => c.replace(/^CAP_/, '')).join(',') || 'none' },
    { header: 'SECCOMP', value: (r) => r.isolation.seccomp },
    { header: 'LSM', value: (r) => lsmText(r.isolation) },
    { header: 'NO_NEW_PRIVS', value: (r) => yesNo(r.isolation.noNewPrivileges) },
    { header: 'PRIVILEGED', value: (r) => yesNo(r.isolation.privileged) },
    { header: 'RO ROOTFS', value: (r) => yesNo(r.isolation.readOnlyRootfs) },
    { header: 'MASKED', value: (r) => String(r.isolation.maskedPaths.length) },
    { header: 'UID 0 = HOST ROOT', value: (r) => yesNo(r.isolation.uid0IsHostRoot) },
  ]);
}

async function containerIsolation(env: Env, id: string): Promise<Isolation> {
  const res = await env.cri().runtime('ContainerStatus', { container_id: id, verbose: true });
  const isolation = (JSON.parse(res.info.info ?? '{}') as { isolation?: Isolation | null }).isolation;
  if (!isolation) throw new CliFailure(grpc.status.UNAVAILABLE, `skiffd gave no isolation report for container ${short(id)}`);
  return isolation;
}

async function inspectIsolation(env: Env, id: string): Promise<void> {
  const target = await resolveTarget(env, id);
  const podId = target.kind === 'pod' ? target.id : (await env.cri().runtime('ListContainers', { filter: { id: target.id } })).containers[0].pod_sandbox_id;
  const pod = (await env.cri().runtime('PodSandboxStatus', { pod_sandbox_id: podId })).status!;
  const containers = (await env.cri().runtime('ListContainers', { filter: { pod_sandbox_id: podId } })).containers.filter((c) => target.kind === 'pod' || c.id === target.id);
  const rows = await Promise.all(containers.map(async (c) => ({ name: c.metadata?.name ?? short(c.id), id: c.id, state: stateName(c.state), isolation: await containerIsolation(env, c.id) })));
  const data = { pod: { id: pod.id, name: pod.metadata?.name, namespace: pod.metadata?.namespace }, containers: rows };
  print(env.output, data, () => {
    const head = `pod ${pod.metadata?.namespace}/${pod.metadata?.name} (${short(pod.id)})\n`;
    if (!rows.length) return `${head}no containers\n`;
    const notes = rows.filter((r) => !r.isolation.observed).map((r) => `${r.name}: ${r.state.toLowerCase()}, namespaces as its spec asks\n`).join('');
    return `${head}${isolationTable(rows)}${notes}`;
  });
}

function statsRow(s: ContainerStats) {
  const cores = s.cpu?.usage_nano_cores?.value;
  return {
    id: s.attributes?.id ?? '',
    name: s.attributes?.metadata?.name ?? '',
    cpuPercent: cores === undefined || cores === null ? null : cores / 1e7,
    memoryBytes: s.memory?.working_set_bytes?.value ?? null,
    diskBytes: s.writable_layer?.used_bytes?.value ?? null,
    inodes: s.writable_layer?.inodes_used?.value ?? null,
    // Pressure stall: the share of the last 10 s some task waited for CPU, memory or IO;
    // null where the host has no pressure files for the container.
    cpuPressure: s.cpu?.psi?.Some?.Avg10 ?? null,
    memoryPressure: s.memory?.psi?.Some?.Avg10 ?? null,
    ioPressure: s.io?.psi?.Some?.Avg10 ?? null,
  };
}

const percent = (v: number | null): string => (v === null ? '-' : v.toFixed(2));

export const WORKLOAD_COMMANDS: Record<string, Command> = {
  info: {
    usage: 'info',
    summary: "skiffd's version, readiness and settings",
    async run(args, env) {
      if (args.length) throw new UsageError('info takes no arguments');
      const [v, st] = await Promise.all([env.cri().runtime('Version', { version: 'v1' }), env.cri().runtime('Status', { verbose: true })]);
      const config = JSON.parse(st.info.config ?? '{}') as Record<string, unknown>;
      const data = { version: v, conditions: st.status?.conditions ?? [], runtimeHandlers: st.runtime_handlers.map((h) => h.name), config };
      print(env.output, data, () =>
        [
          `runtime: ${v.runtime_name} ${v.runtime_version} (CRI ${v.runtime_api_version})`,
          ...(st.status?.conditions ?? []).map((c) => `${c.type}: ${c.status}${c.reason ? ` (${c.reason}${c.message ? `: ${c.message}` : ''})` : ''}`),
          `runtime handlers: ${data.runtimeHandlers.map((h) => h || '(default)').join(', ')}`,
          ...Object.entries(config).map(([k, val]) => `${k}: ${typeof val === 'string' ? val : JSON.stringify(val)}`),
          '',
        ].join('\n'),
      );
    },
  },
  pods: {
    usage: 'pods [-q] [--name N] [--namespace NS]',
    summary: 'list pods',
    flags: { quiet: { type: 'boolean', short: 'q' }, name: { type: 'string' }, namespace: { type: 'string' } },
    async run(args, env, flags) {
      if (args.length) throw new UsageError('pods takes no arguments');
      const items = (await env.cri().runtime('ListPodSandbox', {})).items
        .filter((p) => !flags.name || p.metadata?.name === flags.name)
        .filter((p) => !flags.namespace || p.metadata?.namespace === flags.namespace)
        .sort((a, b) => b.created_at - a.created_at);
      if (flags.quiet) return void process.stdout.write(items.map((p) => `${p.id}\n`).join(''));
      print(env.output, items, () =>
        table(items, [
          { header: 'POD ID', value: (p) => short(p.id) },
          { header: 'CREATED', value: (p) => age(p.created_at) },
          { header: 'STATE', value: (p) => podStateName(p.state) },
          { header: 'NAME', value: (p) => p.metadata?.name ?? '' },
          { header: 'NAMESPACE', value: (p) => p.metadata?.namespace ?? '' },
          { header: 'ATTEMPT', value: (p) => String(p.metadata?.attempt ?? 0) },
          { header: 'RUNTIME', value: (p) => p.runtime_handler || '(default)' },
        ]),
      );
    },
  },
  ps: {
    usage: 'ps [-a] [-q] [-p POD]',
    summary: 'list running containers (-a: all)',
    flags: { all: { type: 'boolean', short: 'a' }, quiet: { type: 'boolean', short: 'q' }, pod: { type: 'string', short: 'p' } },
    async run(args, env, flags) {
      if (args.length) throw new UsageError('ps takes no arguments');
      const filter = { ...(flags.all ? {} : { state: { state: ContainerState.CONTAINER_RUNNING } }), ...(typeof flags.pod === 'string' ? { pod_sandbox_id: flags.pod } : {}) };
      const [list, pods] = await Promise.all([env.cri().runtime('ListContainers', { filter }), podNames(env)]);
      const items = list.containers.sort((a, b) => b.created_at - a.created_at);
      if (flags.quiet) return void process.stdout.write(items.map((c) => `${c.id}\n`).join(''));
      print(env.output, items, () =>
        table(items, [
          { header: 'CONTAINER', value: (c: Container) => short(c.id) },
          { header: 'IMAGE', value: (c) => c.image?.image || c.image_ref },
          { header: 'CREATED', value: (c) => age(c.created_at) },
          { header: 'STATE', value: (c) => stateName(c.state) },
          { header: 'NAME', value: (c) => c.metadata?.name ?? '' },
          { header: 'ATTEMPT', value: (c) => String(c.metadata?.attempt ?? 0) },
          { header: 'POD ID', value: (c) => short(c.pod_sandbox_id) },
          { header: 'POD', value: (c) => pods.get(c.pod_sandbox_id)?.metadata?.name ?? '' },
        ]),
      );
    },
  },
  inspect: {
    usage: 'inspect [--isolation] ID',
    summary: 'status of a container or pod (JSON); --isolation: what isolates each container',
    flags: { isolation: { type: 'boolean' } },
    async run(args, env, flags) {
      const id = oneArg(args, 'container or pod id');
      if (flags.isolation) return inspectIsolation(env, id);
      const target = await resolveTarget(env, id);
      const res =
        target.kind === 'container'
          ? await env.cri().runtime('ContainerStatus', { container_id: target.id, verbose: true })
          : await env.cri().runtime('PodSandboxStatus', { pod_sandbox_id: target.id, verbose: true });
      const info = Object.fromEntries(Object.entries(res.info).map(([k, v]) => [k, parseOrText(v)]));
      const data = { status: res.status, info };
      // crictl prints inspect as JSON; so does the table format here.
      print(env.output === 'table' ? 'json' : env.output, data, () => '');
    },
  },
  stats: {
    usage: 'stats [-p POD] [ID]',
    summary: 'CPU, memory and writable layer use of containers, and their pressure (PSI, some avg10 %)',
    flags: { pod: { type: 'string', short: 'p' } },
    async run(args, env, flags) {
      if (args.length > 1) throw new UsageError('expected at most one container id');
      const filter = { ...(args[0] ? { id: args[0] } : {}), ...(typeof flags.pod === 'string' ? { pod_sandbox_id: flags.pod } : {}) };
      let stats = (await env.cri().runtime('ListContainerStats', { filter })).stats;
      // The CPU rate needs two samples: skiffd keeps the last one per container.
      if (stats.some((s) => s.cpu && !s.cpu.usage_nano_cores)) {
        await new Promise((r) => setTimeout(r, 1000));
        stats = (await env.cri().runtime('ListContainerStats', { filter })).stats;
      }
      const rows = stats.map(statsRow);
      print(env.output, rows, () =>
        table(rows, [
          { header: 'CONTAINER', value: (r) => short(r.id) },
          { header: 'NAME', value: (r) => r.name },
          { header: 'CPU %', value: (r) => percent(r.cpuPercent) },
          { header: 'MEM', value: (r) => (r.memoryBytes === null ? '-' : humanSize(r.memoryBytes)) },
          { header: 'DISK', value: (r) => (r.diskBytes === null ? '-' : humanSize(r.diskBytes)) },
          { header: 'INODES', value: (r) => (r.inodes === null ? '-' : String(r.inodes)) },
          { header: 'CPU PSI', value: (r) => percent(r.cpuPressure) },
          { header: 'MEM PSI', value: (r) => percent(r.memoryPressure) },
          { header: 'IO PSI', value: (r) => percent(r.ioPressure) },
        ]),
      );
    },
  },
  stop: {
    usage: 'stop [-t SECONDS] ID...',
    summary: 'stop containers (SIGKILL after -t, default 10 s) or pods',
    flags: { timeout: { type: 'string', short: 't' } },
    async run(args, env, flags) {
      const timeout = flags.timeout === undefined ? 10 : Number(flags.timeout);
      if (!Number.isInteger(timeout) || timeout < 0) throw new UsageError(`-t: expected whole seconds, got "${flags.timeout}"`);
      await forEachArg(env, args, 'container or pod id', 'stopped', async (id) => {
        const t = await resolveTarget(env, id);
        if (t.kind === 'container') await env.cri().runtime('StopContainer', { container_id: t.id, timeout }, { timeoutMs: (timeout + 30) * 1000 });
        else await env.cri().runtime('StopPodSandbox', { pod_sandbox_id: t.id }, { timeoutMs: 5 * 60_000 });
        return { value: t.id, line: t.id };
      });
    },
  },
  rm: {
    usage: 'rm [-f] ID...',
    summary: 'remove containers or pods (-f: also running ones)',
    flags: { force: { type: 'boolean', short: 'f' } },
    run: (args, env, flags) =>
      forEachArg(env, args, 'container or pod id', 'removed', async (id) => {
        const t = await resolveTarget(env, id);
        if (t.kind === 'container') {
          const st = (await env.cri().runtime('ContainerStatus', { container_id: t.id })).status!;
          if (st.state === ContainerState.CONTAINER_RUNNING && !flags.force) throw new CliFailure(grpc.status.FAILED_PRECONDITION, `container ${short(t.id)} is running: stop it first, or use -f`);
          await env.cri().runtime('RemoveContainer', { container_id: t.id }, { timeoutMs: 5 * 60_000 });
        } else {
          const st = (await env.cri().runtime('PodSandboxStatus', { pod_sandbox_id: t.id })).status!;
          if (st.state === PodSandboxState.SANDBOX_READY && !flags.force) throw new CliFailure(grpc.status.FAILED_PRECONDITION, `pod ${short(t.id)} is ready: stop it first, or use -f`);
          await env.cri().runtime('RemovePodSandbox', { pod_sandbox_id: t.id }, { timeoutMs: 5 * 60_000 });
        }
        return { value: t.id, line: t.id };
      }),
  },
};
