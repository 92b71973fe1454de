// Isolation findings as Kubernetes Events: when a container starts, its isolation report
// (read after the StartContainer reply, off the CRI call path) becomes findings, and each
// new one an Event on its pod through the EventReporter. Only Kubernetes pods (with a
// name, namespace and uid) get them.
import * as fs from 'fs';
import type { ContainerRecord } from '../container/container_service';
import type { Isolation } from '../container/isolation';
import type { Logger } from '../log';
import type { PodRecord } from '../sandbox/pod_registry';
import type { ChangeListener } from '../store/record_set';
import { EventReporter } from './event_reporter';
import { isolationFindings } from './findings';
import { kubeEventSink } from './kube_events';

export interface IsolationEventSources {
  containers: { onChange(l: ChangeListener<ContainerRecord>): () => void; isolation(r: ContainerRecord): Promise<Isolation> };
  pods: { onChange(l: ChangeListener<PodRecord>): () => void; get(id: string): PodRecord | undefined };
}

/** Isolation reports read at once; starts beyond it wait their turn. */
const OBSERVE_CONCURRENCY = 4;
/** Started containers waiting to be looked at; past it a start is not reported. */
const OBSERVE_BACKLOG = 1024;

/** Report each started container's findings until the returned function is called. */
export function watchIsolationEvents(src: IsolationEventSources, reporter: EventReporter, log: Logger): () => void {
  const waiting: ContainerRecord[] = [];
  let running = 0;
  const observe = async (r: ContainerRecord) => {
    const meta = src.pods.get(r.podId)?.config.metadata;
    if (!meta?.name || !meta.namespace || !meta.uid) return;
    const container = r.config.metadata?.name ?? r.id;
    let isolation: Isolation;
    try {
      isolation = await src.containers.isolation(r);
    } catch (e) {
      log.debug('no isolation report for events', { container: r.id, error: (e as Error).message });
      return;
    }
    for (const f of isolationFindings(container, isolation)) reporter.report({ pod: { name: meta.name, namespace: meta.namespace, uid: meta.uid }, container, ...f });
  };
  const next = () => {
    while (running < OBSERVE_CONCURRENCY && waiting.length) {
      const r = waiting.shift()!;
      running++;
      void observe(r).finally(() => {
        running--;
        next();
      });
    }
  };
  const offContainers = src.containers.onChange((change, r) => {
    if (change !== 'started' || waiting.length >= OBSERVE_BACKLOG) return;
    waiting.push(r);
    // After the CRI reply: the listener runs inside StartContainer.
    setImmediate(next);
  });
  const offPods = src.pods.onChange((change, p) => {
    if (change === 'deleted' && p.config.metadata?.uid) reporter.forgetPod(p.config.metadata.uid);
  });
  return () => {
    offContainers();
    offPods();
    waiting.length = 0;
  };
}

/**
 * Turn events on with `kubeconfig` (events.kubeconfig): off when it is empty, when the
 * file is not there (a node whose kubelet is not set up yet), or when it makes no client;
 * each said in the log. Call before the CRI is served: loading the client blocks.
 */
export function startIsolationEvents(kubeconfig: string, src: IsolationEventSources, log: Logger): (() => void) | undefined {
  if (!kubeconfig) return undefined;
  if (!fs.existsSync(kubeconfig)) {
    log.warn('kubernetes events off: no kubeconfig', { kubeconfig });
    return undefined;
  }
  const started = performance.now();
  let sink: ReturnType<typeof kubeEventSink>;
  try {
    sink = kubeEventSink(kubeconfig);
  } catch (e) {
    log.error('kubernetes events off: the kubeconfig makes no client', { kubeconfig, error: (e as Error).message });
    return undefined;
  }
  const reporter = new EventReporter(sink.sink, log);
  const unwatch = watchIsolationEvents(src, reporter, log);
  log.info('kubernetes events on', { server: sink.server, kubeconfig, loadMs: Math.round(performance.now() - started) });
  return () => {
    unwatch();
    reporter.close();
  };
}
