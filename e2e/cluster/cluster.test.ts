// A one-node cluster on skiff: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler 1.20 on loopback, and a kubelet registered as the node, driving skiffd
// over CRI v1alpha2. An operator's kubectl (1.20, from the same source) runs, reads
// logs of, execs into, attaches to, port-forwards to and deletes pods on skiff; the
// API server reaches kubelet's streaming endpoints, which redirect to skiffd's. skiffd
// posts its isolation findings as Events with the kubelet's kubeconfig. The tests read and
// write the API server through @kubernetes/client-node, as the cluster admin.
// Skipped, with the reason printed, when the binaries have not been built
// (hack/build-kube.sh, which `npm test` runs).
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { runTempDir } from '../fixtures/cleanup';
import { busyboxLayer } from '../fixtures/images';
import { TestControlPlane, controlPlaneMissing } from '../fixtures/cluster';
import { KUBELET, TestKubelet, cleanupSkiffdAndPodLogs, httpGet, until } from '../fixtures/kubelet';
import { TestNetwork } from '../fixtures/network';
import { TestRegistry } from '../fixtures/registry';
import { TestSkiffd } from '../fixtures/skiffd';

/** cri.default_pids_limit of the node's skiffd. */
const PIDS_LIMIT = 1024;
const skiffdHost = () => os.hostname();

describe('a cluster on skiff: kubectl against kube-apiserver 1.20 and a kubelet node', function () {
  this.timeout(180_000);
  let reg: TestRegistry;
  let skiffd: TestSkiffd;
  let net: TestNetwork;
  let cp: TestControlPlane;
  let kubelet: TestKubelet;
  let dir: string;
  let nodeLink: string | undefined;
  const logDirs = new Set<string>();

  before(async function () {
    const missing = controlPlaneMissing() ?? (fs.existsSync(KUBELET) ? null : `missing ${KUBELET}`);
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    reg = await TestRegistry.start();
    dir = runTempDir('skiff-cluster-');
    await reg.pushImage('library/busybox', 'latest', [busyboxLayer(dir)], undefined, { Cmd: ['sh'], Env: ['PATH=/bin'] });
    cp = await TestControlPlane.start(path.join(dir, 'cp'));
    // Events with the node's own credentials; a pids limit for containers that set none.
    skiffd = await TestSkiffd.start({ args: ['--network.write_default_config', 'false', '--events.kubeconfig', cp.kubeletKubeconfig, '--cri.default_pids_limit', String(PIDS_LIMIT)] });
    net = new TestNetwork(path.join(skiffd.dir, 'net.d'), path.join(skiffd.dir, 'ipam'), { portmap: true });
    skiffd.mirror('docker.io', reg.host);
    // The node's address: kubelet will not take a loopback one, so a bridge of the test's own (no ports).
    const link = `skn${Math.random().toString(16).slice(2, 8)}`;
    const nodeIP = `10.251.${Math.floor(Math.random() * 250) + 1}.1`;
    execFileSync('ip', ['link', 'add', link, 'type', 'bridge']);
    nodeLink = link;
    execFileSync('ip', ['addr', 'add', `${nodeIP}/32`, 'dev', link]);
    execFileSync('ip', ['link', 'set', link, 'up']);
    kubelet = new TestKubelet(path.join(skiffd.dir, 'kl'), skiffd.socket);
    kubelet.start({ kubeconfig: cp.kubeletKubeconfig, clientCaFile: cp.caFile, nodeIP });
    await until('node skiff-node to be Ready', async () => (await cp.core.readNode({ name: 'skiff-node' })).status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
    // The controller-manager makes each namespace's default service account (pods need it).
    await until('the default service account', () => cp.core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' }));
  });

  after(async function () {
    this.timeout(120_000);
    // Log dirs under /var/log/pods are kubelet's: it leaves them when it stops first.
    const pods = cp ? await cp.core.listNamespacedPod({ namespace: 'default' }).then((l) => l.items, () => [] as V1Pod[]) : [];
    for (const p of pods) logDirs.add(`/var/log/pods/${p.metadata!.namespace}_${p.metadata!.name}_${p.metadata!.uid}`);
    if (cp && kubelet?.running) await cp.kubectl(['delete', 'pods', '--all', '--grace-period=1', '--wait=true'], { timeoutMs: 60_000 }).catch(() => undefined);
    if (this.currentTest?.state === 'failed' && kubelet) console.log(kubelet.log().split('\n').filter((l) => /^[EF]\d/.test(l)).slice(-20).join('\n'));
    await kubelet?.cleanup();
    await cp?.stop();
    if (skiffd) await cleanupSkiffdAndPodLogs(skiffd, logDirs);
    net?.remove();
    if (nodeLink) execFileSync('ip', ['link', 'del', nodeLink]);
    await reg?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const readPod = (name: string) => cp.core.readNamespacedPod({ name, namespace: 'default' });
  const waitReady = (name: string) =>
    until(`pod ${name} to be Ready`, async () => (await readPod(name)).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'), 120_000);
  // A pod deleted by a test is gone from the API server by the end: its log dir is noted first.
  const noteLogDir = async (pod: string) => logDirs.add(`/var/log/pods/default_${pod}_${(await readPod(pod)).metadata!.uid}`);
  /** The Events skiff posted on a pod, by its uid. */
  const skiffEvents = async (uid: string): Promise<CoreV1Event[]> =>
    (await cp.core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.uid=${uid},source=skiff` })).items;
  const reasons = (events: CoreV1Event[]) => events.map((e) => e.reason!).sort();

  it('kubectl run: the scheduler binds the pod to the node, skiff runs it, kubectl logs reads it', async () => {
    await cp.kubectl([
      'run', 'web', '--image=busybox', '--restart=Never', '--',
      'sh', '-c', 'echo hello-from-cluster; mkdir -p /www; echo served-by-skiff > /www/index.html; exec httpd -f -p 8080 -h /www',
    ]);
    await waitReady('web');
    const pod = await readPod('web');
    assert.equal(pod.spec!.nodeName, 'skiff-node');
    const ip = pod.status!.podIP!;
    assert.ok(ip.startsWith(net.prefix + '.'), `pod IP ${ip} on skiff's bridge`);
    assert.equal(await until('the log line', () => cp.kubectl(['logs', 'web'])), 'hello-from-cluster\n');
    // The container's status as kubelet reports it from skiff's ContainerStatus.
    assert.match(pod.status!.containerStatuses![0].containerID!, /^skiff:\/\/[0-9a-f]{64}$/);
    const sandboxes = (await skiffd.client.runtime('ListPodSandbox', { filter: { label_selector: { 'io.kubernetes.pod.name': 'web' } } })).items;
    assert.equal(sandboxes.length, 1);
  });

  it("skiff's isolation findings are Events on the pod, once each, which kubectl describe shows", async () => {
    const uid = (await readPod('web')).metadata!.uid!;
    // busybox runs as uid 0 with no user namespace; kubectl run gave it no limits, skiff a pids one.
    const events = await until('skiff\'s Events on pod web', async () => {
      const found = await skiffEvents(uid);
      return reasons(found).join() === 'RootOnHost,UnboundedResources' ? found : undefined;
    });
    for (const e of events) {
      assert.deepEqual([e.type, e.count, e.involvedObject.kind, e.involvedObject.name, e.involvedObject.fieldPath], ['Warning', 1, 'Pod', 'web', 'spec.containers{web}']);
      assert.equal(e.source?.host, skiffdHost());
    }
    assert.equal(events.find((e) => e.reason === 'UnboundedResources')!.message, 'Container web has no memory limit, no cpu quota and no IO weight of its own: it can take from the other pods on the node');
    assert.match(events.find((e) => e.reason === 'RootOnHost')!.message!, /^Container web runs as uid 0, which is root on the host/);
    const describe = await cp.kubectl(['describe', 'pod', 'web']);
    assert.match(describe, /Warning\s+RootOnHost\s+\S+\s+skiff\S*\s+Container web runs as uid 0/);
  });

  it('a pod on the host PID namespace, created through the API, is reported as such; limits and a user take the rest away', async () => {
    await cp.core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: 'hostpid' },
        spec: {
          hostPID: true,
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'top', image: 'busybox', command: ['sleep', '600'], securityContext: { runAsUser: 1000 }, resources: { limits: { cpu: '100m', memory: '64Mi' } } }],
        },
      },
    });
    await waitReady('hostpid');
    const uid = (await readPod('hostpid')).metadata!.uid!;
    // Sent in the order found: a RootOnHost would come before HostPIDNamespace.
    const events = await until('the HostPIDNamespace Event', async () => {
      const found = await skiffEvents(uid);
      return found.some((e) => e.reason === 'HostPIDNamespace') && found.some((e) => e.reason === 'UnboundedResources') ? found : undefined;
    });
    assert.deepEqual(reasons(events), ['HostPIDNamespace', 'UnboundedResources']);
    assert.match(events.find((e) => e.reason === 'HostPIDNamespace')!.message!, /^Container top shares the host's PID namespace/);
    assert.match(events.find((e) => e.reason === 'UnboundedResources')!.message!, /^Container top has no IO weight of its own/);
    await noteLogDir('hostpid');
    await cp.core.deleteNamespacedPod({ name: 'hostpid', namespace: 'default', gracePeriodSeconds: 1 });
    await until('pod hostpid to go', () => readPod('hostpid').then(() => undefined, (e: { code?: number }) => e.code === 404));
  });

  it('kubectl exec: output, exit codes, stdin, and the service account token the pod was given', async () => {
    assert.equal(await cp.kubectl(['exec', 'web', '--', 'cat', '/www/index.html']), 'served-by-skiff\n');
    await assert.rejects(cp.kubectl(['exec', 'web', '--', 'sh', '-c', 'echo failing >&2; exit 3']), /failing[\s\S]*exit code 3/);
    assert.equal(await cp.kubectl(['exec', '-i', 'web', '--', 'sh', '-c', 'tr a-z A-Z'], { input: 'through stdin\n' }), 'THROUGH STDIN\n');
    const token = await cp.kubectl(['exec', 'web', '--', 'cat', '/var/run/secrets/kubernetes.io/serviceaccount/token']);
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT from the token controller, mounted from a secret volume');
  });

  it('kubectl port-forward reaches the pod through kubelet and skiffd', async () => {
    const pf = cp.kubectlSpawn(['port-forward', 'pod/web', ':8080']);
    try {
      let out = '';
      pf.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      pf.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const port = await until('port-forward to listen', async () => /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out)?.[1], 30_000);
      assert.equal(await httpGet(`http://127.0.0.1:${port}/`), 'served-by-skiff\n');
      assert.equal(await httpGet(`http://127.0.0.1:${port}/index.html`), 'served-by-skiff\n');
    } finally {
      pf.kill('SIGKILL');
    }
  });

  it('kubectl attach: stdin reaches a running container and its output comes back', async () => {
    await cp.kubectl(['apply', '-f', '-'], {
      input: `apiVersion: v1
kind: Pod
metadata: {name: echo}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: busybox
    stdin: true
    stdinOnce: true
    command: ["sh", "-c", "while read l; do echo got:$l; done; echo stdin-closed"]
`,
    });
    await waitReady('echo');
    const out = await cp.kubectl(['attach', '-i', 'echo'], { input: 'one\ntwo\n' });
    assert.match(out, /got:one\ngot:two\n/);
    // stdinOnce: the container saw EOF when kubectl closed its stdin, and finished.
    await until('the echo container to finish', async () => (await readPod('echo')).status?.phase === 'Succeeded');
    assert.equal(await cp.kubectl(['logs', 'echo']), 'got:one\ngot:two\nstdin-closed\n');
  });

  it('a SIGKILL of skiffd: the pod keeps running, the API server sees no restart, kubectl still reaches it', async () => {
    const containerID = (await readPod('web')).status!.containerStatuses![0].containerID;
    const eventsBefore = reasons(await skiffEvents((await readPod('web')).metadata!.uid!));
    await skiffd.kill();
    await new Promise((r) => setTimeout(r, 3000)); // kubelet's calls fail meanwhile
    await skiffd.restart();
    await new Promise((r) => setTimeout(r, 8000)); // several kubelet sync loops
    const pod = await readPod('web');
    assert.equal(pod.status!.phase, 'Running');
    assert.equal(pod.status!.containerStatuses![0].containerID, containerID, 'the same container');
    assert.equal(pod.status!.containerStatuses![0].restartCount, 0);
    assert.deepEqual(reasons(await skiffEvents(pod.metadata!.uid!)), eventsBefore, 'the restarted skiffd does not repeat its findings');
    assert.equal(await cp.kubectl(['exec', 'web', '--', 'cat', '/www/index.html']), 'served-by-skiff\n');
    assert.equal(await cp.kubectl(['logs', 'web']), 'hello-from-cluster\n');
  });

  it('kubectl delete: the pod goes from the API server and from skiff', async () => {
    const uid = (await readPod('web')).metadata!.uid!;
    await noteLogDir('web');
    await cp.kubectl(['delete', 'pod', 'web', '--grace-period=1', '--wait=true'], { timeoutMs: 60_000 });
    await assert.rejects(readPod('web'), (e: { code?: number }) => e.code === 404);
    await until('skiff to remove the pod', async () => {
      const items = (await skiffd.client.runtime('ListPodSandbox', { filter: { label_selector: { 'io.kubernetes.pod.uid': uid } } })).items;
      return items.length === 0;
    });
  });
});
