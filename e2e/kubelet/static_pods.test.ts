// kubelet drives skiff for real: a kubelet 1.20 (CRI runtime.v1alpha2), standalone,
// runs static pods from manifests on a skiffd with a CNI bridge and portmap.
// Skipped, with the reason printed, when the kubelet binary has not been built
// (hack/build-kube.sh, which `npm test` runs).
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { ContainerState, PodSandboxState } from '../../src/cri/gen/cri';
import { runTempDir } from '../fixtures/cleanup';
import { busyboxLayer } from '../fixtures/images';
import { KUBELET, TestKubelet, cleanupSkiffdAndPodLogs, httpGet, until } from '../fixtures/kubelet';
import { TestNetwork } from '../fixtures/network';
import { TestRegistry } from '../fixtures/registry';
import { TestSkiffd } from '../fixtures/skiffd';

const NODE = 'skiff-node';

describe('kubelet on skiff: static pods (standalone kubelet 1.20, CRI v1alpha2)', function () {
  this.timeout(180_000);
  let reg: TestRegistry;
  let skiffd: TestSkiffd;
  let net: TestNetwork;
  let kubelet: TestKubelet;
  const logDirs = new Set<string>();

  before(async function () {
    if (!fs.existsSync(KUBELET)) {
      console.log(`      skipped: no kubelet at ${KUBELET} (hack/build-kube.sh builds it)`);
      this.skip();
    }
    reg = await TestRegistry.start();
    const work = runTempDir('skiff-kl-');
    try {
      await reg.pushImage('library/busybox', 'latest', [busyboxLayer(work)], undefined, { Cmd: ['sh'], Env: ['PATH=/bin'] });
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
    skiffd = await TestSkiffd.start({ args: ['--network.write_default_config', 'false'] });
    net = new TestNetwork(path.join(skiffd.dir, 'net.d'), path.join(skiffd.dir, 'ipam'), { portmap: true });
    skiffd.mirror('docker.io', reg.host);
    kubelet = new TestKubelet(path.join(skiffd.dir, 'kl'), skiffd.socket);
    kubelet.start();
  });

  after(async function () {
    this.timeout(120_000);
    if (kubelet) {
      for (const f of fs.readdirSync(kubelet.manifests)) kubelet.removePod(f.replace(/\.yaml$/, ''));
      await kubelet.cleanup();
      if (this.currentTest?.state === 'failed') console.log(kubelet.log().split('\n').filter((l) => /^[EF]\d/.test(l)).slice(-20).join('\n'));
    }
    if (skiffd) await cleanupSkiffdAndPodLogs(skiffd, logDirs);
    net?.remove();
    await reg?.stop();
  });

  const sandbox = async (pod: string, state = PodSandboxState.SANDBOX_READY) => {
    const items = (await skiffd.client.runtime('ListPodSandbox', { filter: { label_selector: { 'io.kubernetes.pod.name': `${pod}-${NODE}` } } })).items;
    return items.find((p) => p.state === state);
  };
  const containers = async (pod: string, name?: string) =>
    (await skiffd.client.runtime('ListContainers', { filter: { label_selector: { 'io.kubernetes.pod.name': `${pod}-${NODE}`, ...(name ? { 'io.kubernetes.container.name': name } : {}) } } })).containers;
  const running = async (pod: string, name: string) => (await containers(pod, name)).find((c) => c.state === ContainerState.CONTAINER_RUNNING);
  const exec = async (id: string, cmd: string[]) => Buffer.from((await skiffd.client.runtime('ExecSync', { container_id: id, cmd, timeout: 10 })).stdout).toString();

  it('runs a two-container pod sharing an emptyDir, with a pod IP and logs where kubelet reads them', async () => {
    kubelet.addPod(
      'web',
      `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: writer
    image: busybox
    command: ["sh", "-c", "echo hello-from-writer; echo shared > /data/x; sleep 3600"]
    volumeMounts: [{name: data, mountPath: /data}]
  - name: reader
    image: busybox
    command: ["sh", "-c", "sleep 3600"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
`,
    );
    const reader = await until('the reader container', () => running('web', 'reader'), 90_000);
    await until('the writer container', () => running('web', 'writer'));
    assert.equal(await until('the shared file', async () => (await exec(reader.id, ['cat', '/data/x'])) || undefined), 'shared\n');
    const pod = (await sandbox('web'))!;
    const st = await skiffd.client.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true });
    assert.ok(st.status!.network!.ip.startsWith(net.prefix + '.'), `pod IP ${st.status!.network!.ip} on the bridge`);
    const logDir = (JSON.parse(st.info.info) as { config: { log_directory: string } }).config.log_directory;
    logDirs.add(logDir);
    assert.match(logDir, /^\/var\/log\/pods\/default_web-skiff-node_[0-9a-f-]+$/);
    const log = path.join(logDir, 'writer', '0.log');
    const line = await until('the writer log line', async () => fs.readFileSync(log, 'utf8').split('\n')[0] || undefined);
    assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) stdout F hello-from-writer$/);
  });

  it('serves a hostPort through portmap', async () => {
    const hostPort = 30000 + Math.floor(Math.random() * 20000);
    kubelet.addPod(
      'port',
      `apiVersion: v1
kind: Pod
metadata: {name: port, namespace: default}
spec:
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo served-by-skiff > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080, hostPort: ${hostPort}}]
`,
    );
    await until('the httpd container', () => running('port', 'httpd'), 60_000);
    const body = await until('an answer on the hostPort', () => httpGet(`http://${net.gateway}:${hostPort}/index.html`));
    assert.equal(body, 'served-by-skiff\n');
  });

  it('restarts a container whose exec liveness probe fails, and follows restartPolicy', async () => {
    kubelet.addPod(
      'probe',
      `apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: default}
spec:
  containers:
  - name: flaky
    image: busybox
    command: ["sh", "-c", "touch /tmp/ok; sleep 2; rm /tmp/ok; sleep 3600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/ok"]}
      periodSeconds: 1
      failureThreshold: 1
`,
    );
    kubelet.addPod(
      'once',
      `apiVersion: v1
kind: Pod
metadata: {name: once, namespace: default}
spec:
  restartPolicy: Never
  containers:
  - {name: done, image: busybox, command: ["sh", "-c", "exit 0"]}
`,
    );
    kubelet.addPod(
      'retry',
      `apiVersion: v1
kind: Pod
metadata: {name: retry, namespace: default}
spec:
  restartPolicy: OnFailure
  containers:
  - {name: fails, image: busybox, command: ["sh", "-c", "exit 1"]}
`,
    );
    const restarted = await until('the flaky container restarted', async () => (await containers('probe', 'flaky')).find((c) => c.metadata!.attempt >= 1), 90_000);
    assert.ok(restarted.metadata!.attempt >= 1);
    const first = (await containers('probe', 'flaky')).find((c) => c.metadata!.attempt === 0)!;
    const st = await skiffd.client.runtime('ContainerStatus', { container_id: first.id });
    assert.equal(st.status!.state, ContainerState.CONTAINER_EXITED, 'the failing instance was killed');
    await until('the OnFailure container run again', async () => (await containers('retry', 'fails')).some((c) => c.metadata!.attempt >= 1), 60_000);
    const once = await until('the Never container exited', async () => (await containers('once', 'done')).find((c) => c.state === ContainerState.CONTAINER_EXITED), 60_000);
    await new Promise((r) => setTimeout(r, 5000));
    const all = await containers('once', 'done');
    assert.deepEqual(all.map((c) => c.id), [once.id], 'restartPolicy Never: never run again');
    assert.equal((await skiffd.client.runtime('ContainerStatus', { container_id: once.id })).status!.exit_code, 0);
  });

  it('keeps pods running through a SIGKILL of skiffd, and kubelet sees no change', async () => {
    const before = (await skiffd.client.runtime('ListContainers', { filter: { state: { state: ContainerState.CONTAINER_RUNNING } } })).containers;
    const web = before.filter((c) => c.labels['io.kubernetes.pod.name'] === `web-${NODE}`).map((c) => c.id).sort();
    assert.equal(web.length, 2);
    await skiffd.kill();
    await new Promise((r) => setTimeout(r, 3000)); // kubelet's calls fail meanwhile
    await skiffd.restart();
    await new Promise((r) => setTimeout(r, 10_000)); // several kubelet sync loops
    assert.ok(kubelet.running, 'kubelet kept running');
    const after = (await containers('web')).filter((c) => c.state === ContainerState.CONTAINER_RUNNING).map((c) => c.id).sort();
    assert.deepEqual(after, web, 'the same containers run: none restarted or recreated');
    assert.ok((await containers('web')).every((c) => c.metadata!.attempt === 0));
    const reader = (await running('web', 'reader'))!;
    assert.equal(await exec(reader.id, ['cat', '/data/x']), 'shared\n');
  });

  it('stops a pod whose manifest is removed', async () => {
    const pod = (await sandbox('web'))!;
    kubelet.removePod('web');
    await until('the web pod stopped', async () => {
      const st = await skiffd.client.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id }).catch(() => undefined);
      return !st || st.status!.state === PodSandboxState.SANDBOX_NOTREADY;
    });
    assert.equal((await containers('web')).filter((c) => c.state === ContainerState.CONTAINER_RUNNING).length, 0);
  });
});
