// ExecSync against a real skiffd under hostile output: what a probe prints is capped so the
// reply fits kubelet's 16 MiB gRPC receive limit, and the cap bounds memory too: skiffd and
// the pod's shim grow by about the cap per call (the sum over concurrent calls) and give
// it back afterwards.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { CriClient } from '../../src/cri/client';
import { codec } from '../../src/cri/proto';
import { EXEC_SYNC_MAX_OUTPUT } from '../../src/shim/client';
import { CriPods, HOST_NETWORK } from '../fixtures/cri_pods';
import { startTestNode, TestNode } from '../fixtures/node';

const MiB = 1024 * 1024;
// kubelet's maxMsgSize (pkg/kubelet/cri/remote): the largest reply it accepts.
const KUBELET_MAX_MSG = 16 * MiB;
const CAP = EXEC_SYNC_MAX_OUTPUT;

/** VmRSS and VmHWM (peak RSS) of a process, in bytes. */
function memory(pid: number): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** Start a new peak: VmHWM drops to the current RSS (clear_refs 5, Linux 4.0). */
function resetPeak(pid: number): void {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

describe('CRI ExecSync: output cap, reply size and memory', function () {
  this.timeout(300_000);
  let node: TestNode;
  let pods: CriPods;
  let kubelet: CriClient;
  let ctr = '';
  let shimPid = 0;

  /** An ExecSync as kubelet makes it: a client that takes replies up to 16 MiB. */
  const execSync = (cmd: string[]) => kubelet.runtime('ExecSync', { container_id: ctr, cmd, timeout: 60 }, { timeoutMs: 120_000 });
  const flood = (bytes: number, to = '') => ['sh', '-c', `head -c ${bytes} /dev/zero${to}`];

  before(async () => {
    node = await startTestNode();
    pods = new CriPods(node.skiffd, { prefix: 'execcap', namespace: 'e2e', uidPrefix: 'uid-execcap-' });
    const pod = await pods.runPod(HOST_NETWORK);
    ctr = await pods.startCtr(pod, 'probe');
    shimPid = Number(fs.readFileSync(path.join(node.skiffd.state, 'pods', pod.id, 'shim', 'shim.pid'), 'utf8'));
    kubelet = new CriClient(node.skiffd.socket, 'runtime.v1', { 'grpc.max_receive_message_length': KUBELET_MAX_MSG });
  });
  after(async () => {
    kubelet?.close();
    await node?.stop();
  });

  // First, so that its baseline is skiffd as it idles: no garbage of earlier calls.
  it('grows skiffd and the shim by about the cap per call, concurrent calls summed, and gives it back', async () => {
    const procs = { skiffd: node.skiffd.pid!, shim: shimPid };
    await execSync(['true']);
    const base = { skiffd: memory(procs.skiffd).rss, shim: memory(procs.shim).rss };
    const report: string[] = [`baseline: skiffd ${mib(base.skiffd)}, shim ${mib(base.shim)}`];
    const flooded = async () => assert.equal((await execSync(flood(64 * MiB))).stdout.length, CAP);
    /** Peak RSS (VmHWM) over run(), above the baseline. */
    const peaks = async (what: string, run: () => Promise<unknown>) => {
      for (const pid of Object.values(procs)) resetPeak(pid);
      await run();
      const now = { skiffd: memory(procs.skiffd), shim: memory(procs.shim) };
      report.push(`${what}: skiffd peak ${mib(now.skiffd.peak)}, shim peak ${mib(now.shim.peak)}`);
      return { skiffd: now.skiffd.peak - base.skiffd, shim: now.shim.peak - base.shim };
    };
    try {
      const inTurn = await peaks('3 x 64 MiB in turn', async () => {
        for (let i = 0; i < 3; i++) await flooded();
      });
      const atOnce = await peaks('4 x 64 MiB at once', () => Promise.all([0, 1, 2, 3].map(flooded)));
      // The shim holds what it keeps of each call, nothing more.
      assert.ok(inTurn.shim <= 1.5 * CAP, `shim, one call at a time: ${mib(inTurn.shim)}`);
      assert.ok(atOnce.shim <= 4 * 1.5 * CAP, `shim, four calls at once: ${mib(atOnce.shim)}`);
      // skiffd holds a call's output once and gRPC's framed copy of the reply; what is
      // done with waits for V8 to collect it, which external memory of 64 MiB triggers.
      assert.ok(inTurn.skiffd <= 2 * CAP + 64 * MiB, `skiffd, one call at a time: ${mib(inTurn.skiffd)}`);
      assert.ok(atOnce.skiffd <= 4 * 2 * CAP + 64 * MiB, `skiffd, four calls at once: ${mib(atOnce.skiffd)}`);
      // Given back: both come down to about where they started.
      const deadline = Date.now() + 90_000;
      for (;;) {
        const now = { skiffd: memory(procs.skiffd).rss, shim: memory(procs.shim).rss };
        if (now.skiffd - base.skiffd <= CAP / 2 && now.shim - base.shim <= 2 * MiB) {
          report.push(`afterwards: skiffd ${mib(now.skiffd)}, shim ${mib(now.shim)}`);
          break;
        }
        assert.ok(Date.now() < deadline, `memory not given back: skiffd ${mib(now.skiffd)}, shim ${mib(now.shim)}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      console.log(`      ${report.join('\n      ')}`);
    }
  });

  it('cuts 64 MiB of stdout to the cap, in a reply kubelet accepts', async () => {
    const r = await execSync(flood(64 * MiB));
    assert.equal(r.exit_code, 0);
    assert.equal(r.stdout.length, CAP);
    assert.ok(Buffer.from(r.stdout).every((b) => b === 0));
    assert.equal(r.stderr.length, 0);
    const wire = codec('ExecSyncResponse').encode(r).length;
    assert.ok(wire <= KUBELET_MAX_MSG, `the reply is ${wire} bytes`);
  });

  it('caps stdout and stderr together, each keeping what came first', async () => {
    // 4 MiB of stderr first, then stdout until the cap; the exit code survives the cut.
    const r = await execSync(['sh', '-c', `head -c ${4 * MiB} /dev/zero >&2; head -c ${64 * MiB} /dev/zero; exit 7`]);
    assert.equal(r.exit_code, 7);
    assert.equal(r.stderr.length, 4 * MiB);
    assert.equal(r.stdout.length, CAP - 4 * MiB);
    // Exactly the cap is not cut, and small output is whole.
    const exact = await execSync(flood(CAP, ' >&2'));
    assert.deepEqual([exact.stdout.length, exact.stderr.length], [0, CAP]);
    const small = await execSync(['sh', '-c', 'echo out; echo err >&2']);
    assert.deepEqual([Buffer.from(small.stdout).toString(), Buffer.from(small.stderr).toString()], ['out\n', 'err\n']);
  });
});
