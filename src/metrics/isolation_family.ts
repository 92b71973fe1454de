// skiff_container_isolation: 13 series for each running container, 13,000 at 500 pods.
// Through prom-client every scrape set each one by a fresh labels object, hashed and
// checked, then formatted again: 260 to 350 ms of a scrape at 1,000 containers, most of it
// the collector. A container's facts change only when its process does (ContainerService
// caches them per process), so its lines are formatted once for those facts and reused;
// a scrape joins them.
import type { ContainerRecord, ContainerService } from '../container/container_service';
import { Isolation, runsAsHostRoot } from '../container/isolation';
import type { SandboxService } from '../sandbox/sandbox_service';
import { forEachLimited } from '../store/parallel';

const ISOLATION_METRIC = 'skiff_container_isolation';
const HELP =
  "Isolation facts of running containers, by check: host_network, host_pid, host_ipc (1: the host's namespace), privileged, " +
  'seccomp_unconfined, lsm_unconfined (neither an AppArmor profile nor an SELinux label), ' +
  "root_on_host (runs as uid 0 and that is the host's root), writable_rootfs (1 when true), " +
  'extra_capabilities (how many beyond the default set), no_memory_limit, no_pids_limit, no_cpu_quota, no_io_weight ' +
  "(1: the container's cgroup leaves it unbounded, so it can take from its neighbours). Labelled by Kubernetes namespace, pod and container name.";
const HEAD = `# HELP ${ISOLATION_METRIC} ${HELP.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${ISOLATION_METRIC} gauge\n`;

/** Containers whose isolation facts a scrape gathers at once: the first scrape reads every
 * container's config.json, and 1,000 of them at once took skiffd's RSS up 35 MiB. */
const CONCURRENCY = 32;

/** The checks of one container, in the order they are exposed. */
function isolationChecks(i: Isolation): [string, number][] {
  return [
    ['host_network', +(i.namespaces.net === 'host')],
    ['host_pid', +(i.namespaces.pid === 'host')],
    ['host_ipc', +(i.namespaces.ipc === 'host')],
    ['privileged', +i.privileged],
    ['seccomp_unconfined', +(i.seccomp === 'unconfined')],
    ['lsm_unconfined', +i.lsmUnconfined],
    ['root_on_host', +runsAsHostRoot(i)],
    ['writable_rootfs', +!i.readOnlyRootfs],
    ['extra_capabilities', i.extraCapabilities.length],
    ['no_memory_limit', +i.unbounded.includes('memory')],
    ['no_pids_limit', +i.unbounded.includes('pids')],
    ['no_cpu_quota', +i.unbounded.includes('cpu')],
    ['no_io_weight', +i.unbounded.includes('io')],
  ];
}

/** A label value as the text format writes it. */
const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export class IsolationFamily {
  /** Each running container's lines, and the facts they were made from (its names, pod's
   * and own, are fixed for its life). */
  private lines = new Map<string, { facts: Isolation; text: string }>();

  constructor(
    private readonly pods: SandboxService,
    private readonly containers: ContainerService,
  ) {}

  /** The family in the text format (the same in OpenMetrics): its HELP, TYPE and samples. */
  async text(): Promise<string> {
    const next = new Map<string, { facts: Isolation; text: string }>();
    const running = this.containers.list().filter((c) => c.state === 'running');
    await forEachLimited(running, CONCURRENCY, async (c) => {
      const facts = await this.containers.isolation(c).catch(() => null);
      if (!facts) return;
      const had = this.lines.get(c.id);
      next.set(c.id, had?.facts === facts ? had : { facts, text: format(this.labels(c), facts) });
    });
    this.lines = next;
    let out = HEAD;
    for (const c of running) out += next.get(c.id)?.text ?? '';
    return out;
  }

  private labels(c: ContainerRecord): string {
    const m = this.pods.get(c.podId)?.config.metadata;
    return `namespace="${escapeLabel(m?.namespace ?? '')}",pod="${escapeLabel(m?.name ?? '')}",container="${escapeLabel(c.config.metadata?.name ?? '')}"`;
  }
}

function format(labels: string, facts: Isolation): string {
  let text = '';
  for (const [check, v] of isolationChecks(facts)) text += `${ISOLATION_METRIC}{${labels},check="${check}"} ${v}\n`;
  return text;
}
