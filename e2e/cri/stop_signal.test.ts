// CRI stop signals (KEP-4960) against a real skiffd: StopContainer sends the config's
// stop_signal, else the image's STOPSIGNAL, else SIGTERM; ContainerStatus reports the
// signal in force, also after a restart of skiffd; a value outside the enum is refused.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import type { CriCallError } from '../../src/cri/client';
import type { ContainerConfig, PodSandboxConfig } from '../../src/cri/gen/cri';
import { ContainerState, Signal } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { startTestNode, TestNode } from '../fixtures/node';

const INVALID_ARGUMENT = 3;

// PID 1 reports which of the signals it traps arrived, and exits with a code of its own
// for each (37 is SIGRTMIN+3 for the kernel).
const TRAPS = [
  ['USR1', 71],
  ['USR2', 72],
  ['TERM', 73],
  ['37', 74],
] as const;
const TRAPPING = TRAPS.map(([sig, code]) => `trap "echo got-${sig}; exit ${code}" ${sig}`).join('; ') + '; while true; do sleep 0.1; done';

describe('CRI stop signals (skiffd over gRPC)', function () {
  this.timeout(180_000);
  let node: TestNode;
  let logDir: string;
  let pod: { id: string; config: Reply<PodSandboxConfig> };

  const client = () => node.skiffd.client;
  const config = (name: string, over: Reply<ContainerConfig> = {}): Reply<ContainerConfig> => ({
    metadata: { name, attempt: 0 },
    image: { image: 'busybox' },
    command: ['sh', '-c', TRAPPING],
    log_path: `${name}.log`,
    ...over,
  });
  const create = async (name: string, over: Reply<ContainerConfig> = {}) =>
    (await client().runtime('CreateContainer', { pod_sandbox_id: pod.id, config: config(name, over), sandbox_config: pod.config })).container_id;
  const status = async (id: string) => (await client().runtime('ContainerStatus', { container_id: id })).status!;
  const log = (name: string) => {
    const file = path.join(logDir, `${name}.log`);
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  };

  before(async () => {
    node = await startTestNode({
      latest: { Cmd: ['sh'], Env: ['PATH=/bin'] },
      usr2: { Cmd: ['sh'], Env: ['PATH=/bin'], StopSignal: 'SIGUSR2' },
    });
    logDir = path.join(node.skiffd.dir, 'logs', 'stopsig');
    const podConfig: Reply<PodSandboxConfig> = { metadata: { name: 'stopsig', namespace: 'e2e', uid: 'uid-stopsig', attempt: 0 }, hostname: 'stopsig', log_directory: logDir, linux: {} };
    pod = { id: (await client().runtime('RunPodSandbox', { config: podConfig })).pod_sandbox_id, config: podConfig };
  });
  after(async () => {
    await node?.stop();
  });

  it('sends the signal in force (config, else image STOPSIGNAL, else SIGTERM), reports it, and keeps it across a skiffd restart', async () => {
    // name, config, what ContainerStatus reports, the exit code of the trap it must reach
    const cases: [string, Reply<ContainerConfig>, Signal, number][] = [
      ['config', { stop_signal: Signal.SIGUSR1 }, Signal.SIGUSR1, 71],
      ['config-over-image', { stop_signal: Signal.SIGUSR1, image: { image: 'busybox:usr2' } }, Signal.SIGUSR1, 71],
      ['image', { image: { image: 'busybox:usr2' } }, Signal.SIGUSR2, 72],
      ['neither', {}, Signal.SIGTERM, 73],
      ['realtime', { stop_signal: Signal.SIGRTMINPLUS3 }, Signal.SIGRTMINPLUS3, 74],
    ];
    const ids = new Map<string, string>();
    for (const [name, over, reported] of cases) {
      const id = await create(name, over);
      ids.set(name, id);
      assert.equal((await status(id)).stop_signal, reported, `${name}: reported while created`);
      await client().runtime('StartContainer', { container_id: id });
    }
    // The signal is in the container's record: a new skiffd reports and sends the same.
    await node.skiffd.kill();
    await node.skiffd.restart();
    for (const [name, , reported, exitCode] of cases) {
      const id = ids.get(name)!;
      assert.equal((await status(id)).stop_signal, reported, `${name}: reported after the restart`);
      // A generous timeout: a signal that never arrived ends in SIGKILL (137), not in its trap.
      await client().runtime('StopContainer', { container_id: id, timeout: 60 });
      const st = await status(id);
      assert.equal(st.state, ContainerState.CONTAINER_EXITED, name);
      assert.equal(st.exit_code, exitCode, `${name}: exited through its trap; log: ${log(name)}`);
      assert.match(log(name), new RegExp(`got-${TRAPS.find(([, c]) => c === exitCode)![0]}\\n`), name);
      assert.equal(st.stop_signal, reported, `${name}: reported once exited`);
    }
  });

  it('accepts SIGKILL as the stop signal: the container is killed by it', async () => {
    const id = await create('kill', { stop_signal: Signal.SIGKILL });
    await client().runtime('StartContainer', { container_id: id });
    await client().runtime('StopContainer', { container_id: id, timeout: 60 });
    const st = await status(id);
    assert.equal(st.exit_code, 137);
    assert.equal(st.stop_signal, Signal.SIGKILL);
    assert.doesNotMatch(log('kill'), /got-/);
  });

  it('refuses a stop_signal outside the enum with INVALID_ARGUMENT naming the field, and creates nothing', async () => {
    const bundles = () => fs.readdirSync(path.join(node.skiffd.state, 'containers')).length;
    const before = bundles();
    const err = await create('bad', { stop_signal: 99 as Signal }).then(
      () => assert.fail('created'),
      (e: CriCallError) => e,
    );
    assert.equal(err.code, INVALID_ARGUMENT);
    assert.match(err.details, /stop_signal/);
    assert.equal(bundles(), before, 'no bundle left');
    const listed = await client().runtime('ListContainers', { filter: { pod_sandbox_id: pod.id } });
    assert.deepEqual(listed.containers.filter((c) => c.metadata?.name === 'bad'), []);
    // The name was not reserved either.
    const id = await create('bad', { stop_signal: Signal.SIGUSR1 });
    assert.equal((await status(id)).stop_signal, Signal.SIGUSR1);
  });
});
