// cri.default_pids_limit against a real skiffd and kernel: a container whose CRI config
// sets no pids limit gets pids.max in its own cgroup (v1 pids controller or cgroup2), a
// fork storm inside it is refused with EAGAIN at that limit, and the node and a neighbour
// container carry on; the isolation report then no longer flags its pids as unbounded.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import type { Isolation } from '../../src/container/isolation';
import { CriPods, HOST_NETWORK } from '../fixtures/cri_pods';
import { until } from '../fixtures/kubelet';
import { startTestNode, TestNode } from '../fixtures/node';

const LIMIT = 64;
/** Far more forks than the limit allows, so the storm ends even if the limit were missing. */
const STORM_FORKS = 3000;

/** A pids file of cgroup `cg`: the v1 pids controller's, else the cgroup2 one. */
function pidsFile(cg: string, file: string): string {
  return fs.existsSync(`/sys/fs/cgroup/pids${cg}`) ? `/sys/fs/cgroup/pids${cg}/${file}` : `/sys/fs/cgroup${cg}/${file}`;
}

describe('cri.default_pids_limit: a fork storm stays in its container', function () {
  this.timeout(240_000);
  let node: TestNode;
  let pods: CriPods;

  before(async () => {
    node = await startTestNode(undefined, ['--cri.default_pids_limit', String(LIMIT)]);
    pods = new CriPods(node.skiffd, { prefix: 'pids', namespace: 'e2e', uidPrefix: 'uid-pids-' });
  });
  after(async () => {
    await node?.stop();
  });

  const isolation = async (id: string) => {
    const res = await node.skiffd.client.runtime('ContainerStatus', { container_id: id, verbose: true });
    return (JSON.parse(res.info.info) as { isolation: Isolation }).isolation;
  };

  it('sets pids.max on a container without a limit; forks past it fail with EAGAIN while a neighbour and skiffd go on', async () => {
    const pod = await pods.runPod(HOST_NETWORK);
    const neighbour = await pods.startCtr(pod, 'neighbour');
    // Each fork leaves a sleeping child; the subshell stops at the first fork the kernel
    // refuses (ash gives up on EAGAIN) or after STORM_FORKS. Then PID 1 reports with
    // builtins only and execs: it has no pid left to fork with.
    const storm = await pods.startCtr(pod, 'storm', {
      command: ['sh', '-c', `(n=0; while [ $n -lt ${STORM_FORKS} ]; do sleep 600 & n=$((n+1)); echo $n > /tmp/forks; done); read n < /tmp/forks; echo spawned=$n; exec sleep 600`],
    });
    const cg = `${node.skiffd.cgroupParent}/skiff-pod-${pod.id}/${storm}`;
    assert.equal(fs.readFileSync(pidsFile(cg, 'pids.max'), 'utf8').trim(), String(LIMIT));
    const logFile = path.join(pods.logDir, pod.config.metadata!.name!, 'storm.log');
    const log = await until(
      'the storm to end',
      async () => {
        const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
        return /spawned=\d+/.test(text) ? text : undefined;
      },
      120_000,
    );
    const spawned = Number(/spawned=(\d+)/.exec(log)![1]);
    assert.ok(spawned < LIMIT && spawned > LIMIT / 2, `${spawned} children forked under a limit of ${LIMIT}`);
    assert.match(log, /can't fork: Resource temporarily unavailable/, 'the fork past the limit failed with EAGAIN');
    assert.ok(Number(fs.readFileSync(pidsFile(cg, 'pids.current'), 'utf8')) <= LIMIT);
    assert.match(fs.readFileSync(pidsFile(cg, 'pids.events'), 'utf8'), /^max [1-9]\d*$/m, 'the kernel counted the refusals');
    // The neighbour has pids of its own: it still forks, and skiffd still answers.
    assert.deepEqual(await pods.exec(neighbour, ['sh', '-c', 'sleep 0 & wait; echo forked']), { out: 'forked\n', err: '', code: 0 });
    assert.equal((await isolation(storm)).limits.pids, LIMIT);
    assert.ok(!(await isolation(storm)).unbounded.includes('pids'));
  });

  it('leaves a container with a pids.max of its own (CRI unified, cgroup v2) to that limit', async function () {
    // unified sets cgroup2 files only: where pids is a v1 controller the shim refuses the key.
    if (fs.existsSync('/sys/fs/cgroup/pids/cgroup.procs')) {
      console.log('      skipped: the pids controller is on cgroup v1 here (the unit tests cover the choice)');
      this.skip();
    }
    const pod = await pods.runPod(HOST_NETWORK);
    const own = await pods.startCtr(pod, 'own', { linux: { resources: { unified: { 'pids.max': '20' } } } });
    const cg = `${node.skiffd.cgroupParent}/skiff-pod-${pod.id}/${own}`;
    assert.equal(fs.readFileSync(pidsFile(cg, 'pids.max'), 'utf8').trim(), '20');
    assert.equal((await isolation(own)).limits.pids, 20);
  });
});
