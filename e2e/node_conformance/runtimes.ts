// The two runtimes the node conformance suite runs against, each throwaway and pulling the
// same fabricated images from the loopback registry: a test skiffd (its own root, state,
// socket, CNI conf dir, bridge and host-local dir) and Debian's containerd 1.6 with runc.
import * as fs from 'fs';
import * as path from 'path';
import { CriClient } from '../../src/cri/client';
import { canLowerOomScoreAdj, launchContainerd } from '../fixtures/containerd';
import { TestNetwork } from '../fixtures/network';
import { TestSkiffd } from '../fixtures/skiffd';
import { SKIFFD_PREFIX, WORK } from './host';
import { MIRRORED_REGISTRIES, PAUSE_IMAGE } from './images';

export type RuntimeName = 'skiff' | 'containerd';

export interface TestRuntime {
  name: RuntimeName;
  /** unix:///... for kubelet's --container-runtime-endpoint and --image-service-endpoint. */
  endpoint: string;
  client: CriClient;
  logFile: string;
  /** The daemon's pid. */
  pid: number;
  /** What kubelet is told beside the CRI endpoint. */
  kubeletFlags: string[];
  /** Remove every pod, stop the daemon, remove its dirs. */
  stop(): Promise<void>;
}

export async function startSkiff(registryHost: string): Promise<TestRuntime> {
  const skiffd = await TestSkiffd.start({
    dirPrefix: SKIFFD_PREFIX,
    // Its own default network (kubelet moves it to the pod CIDR 10.100.0.0/24), a debug log
    // line per CRI call to find what a failed spec asked for.
    args: ['--network.bridge', 'skn0', '--network.ipam_data_dir', path.join(WORK, 'skiff-ipam'), '--cri.cgroup_parent', '/skiffd'],
  });
  for (const name of MIRRORED_REGISTRIES) skiffd.mirror(name, registryHost);
  return {
    name: 'skiff',
    endpoint: `unix://${skiffd.socket}`,
    client: skiffd.client,
    logFile: skiffd.logFile,
    pid: skiffd.pid!,
    kubeletFlags: [],
    stop: () => skiffd.cleanup(),
  };
}

export async function startContainerd(registryHost: string): Promise<TestRuntime> {
  const dir = path.join(WORK, 'containerd');
  fs.mkdirSync(dir, { recursive: true });
  // containerd writes no CNI config of its own: a bridge with portmap, as skiff's default has.
  const net = new TestNetwork(path.join(dir, 'net.d'), path.join(dir, 'ipam'), { portmap: true });
  const { proc, client, socket: sock, logFile } = await launchContainerd({
    dir,
    registryHost,
    mirrors: MIRRORED_REGISTRIES,
    cniConfDir: net.confDir,
    sandboxImage: PAUSE_IMAGE,
    // Clamped as skiffd clamps (its default): only where the host refuses lower scores,
    // which would fail every RunPodSandbox (canLowerOomScoreAdj says why).
    cri: { netns_mounts_under_state_dir: true, restrict_oom_score_adj: !canLowerOomScoreAdj() },
  });
  return {
    name: 'containerd',
    endpoint: `unix://${sock}`,
    client,
    logFile,
    pid: proc.pid!,
    // kubelet's cAdvisor reads containerd's containers (their labels, memory and network
    // stats) from its socket, which on a node is at cAdvisor's default path.
    kubeletFlags: [`--containerd=${sock}`],
    stop: async () => {
      try {
        for (const p of (await client.runtime('ListPodSandbox', {}, { timeoutMs: 20_000 })).items) {
          await client.runtime('StopPodSandbox', { pod_sandbox_id: p.id }).catch(() => {});
          await client.runtime('RemovePodSandbox', { pod_sandbox_id: p.id }).catch(() => {});
        }
      } catch {
        /* the sweep kills what is left */
      }
      client.close();
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      // Shims, mounts, cgroups, dirs: the run's sweep (host.ts) removes what is left.
    },
  };
}
