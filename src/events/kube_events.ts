// The EventSink to the API server: core/v1 Events on the pod (what `kubectl get events` and
// `kubectl describe pod` show), posted with a kubeconfig such as the kubelet's. The client
// (@kubernetes/client-node) costs ~55 MiB of RSS and a few hundred ms of loading: it is
// required here only, and only when events are configured, before skiffd serves the CRI.
import * as fs from 'fs';
import * as os from 'os';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { EventSink, PodEvent } from './event_reporter';

/** Who the Events say reported them (source.component, reportingComponent). */
export const EVENT_COMPONENT = 'skiff';
/** A request to the API server that takes longer fails (and is dropped). */
const REQUEST_TIMEOUT_MS = 10_000;

/** The Event as kubelet writes its own: named <pod>.<hex nanoseconds>, on the container's
 * field of the pod, with a first and last timestamp and a count. */
export function podEventBody(e: PodEvent, now: Date, seq: number, host: string): CoreV1Event {
  // Nanoseconds plus a sequence number: two events of one pod in a millisecond stay apart.
  const stamp = (BigInt(now.getTime()) * 1_000_000n + BigInt(seq % 1_000_000)).toString(16);
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${e.pod.name}.${stamp}`, namespace: e.pod.namespace },
    involvedObject: { apiVersion: 'v1', kind: 'Pod', name: e.pod.name, namespace: e.pod.namespace, uid: e.pod.uid, fieldPath: `spec.containers{${e.container}}` },
    reason: e.reason,
    message: e.message,
    type: 'Warning',
    source: { component: EVENT_COMPONENT, host },
    reportingComponent: EVENT_COMPONENT,
    reportingInstance: host,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

/**
 * A sink posting to the cluster of `kubeconfig`. Throws when the file does not make a
 * client (no such file, no current cluster): the caller turns events off and says why.
 */
export function kubeEventSink(kubeconfig: string): { sink: EventSink; server: string } {
  fs.accessSync(kubeconfig, fs.constants.R_OK);
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when events are on
  const k8s = require('@kubernetes/client-node') as typeof import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`${kubeconfig} names no current cluster`);
  const api = kc.makeApiClient(k8s.CoreV1Api);
  const host = os.hostname();
  let seq = 0;
  const sink: EventSink = async (e) => {
    const body = podEventBody(e, new Date(), seq++, host);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from ${cluster.server} in ${REQUEST_TIMEOUT_MS / 1000} s`)), REQUEST_TIMEOUT_MS);
      timer.unref(); // a request to the API server never keeps skiffd from exiting
    });
    try {
      await Promise.race([api.createNamespacedEvent({ namespace: e.pod.namespace, body }), timeout]);
    } catch (err) {
      throw new Error(apiErrorText(err));
    } finally {
      clearTimeout(timer);
    }
  };
  return { sink, server: cluster.server };
}

/** The API server's own message (a Status body) where there is one, else the error's. */
function apiErrorText(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  if (typeof e.code === 'number' && e.body) {
    try {
      const status = (typeof e.body === 'string' ? JSON.parse(e.body) : e.body) as { message?: string };
      if (status.message) return `HTTP ${e.code}: ${status.message}`;
    } catch {
      // not JSON: the message below
    }
  }
  return e.message ?? String(err);
}
