// The two runtimes the node conformance suite runs against, each throwaway and pulling the
// same fabricated images from the loopback registry: a test skiffd (its own root, state,
// socket, CNI conf dir, bridge and host-local dir) and Debian's containerd 1.6 with runc.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CriClient } from '../../src/cri/client';
import { TestNetwork } from '../fixtures/network';
import { TestSkiffd } from '../fixtures/skiffd';
import { CGROUP_ROOT, SKIFFD_PREFIX, WORK } from './host';
import { MIRRORED_REGISTRIES, PAUSE_IMAGE } from './images';

export type RuntimeName = 'skiff' | 'containerd';

export interface TestRuntime {
  name: RuntimeName;
  /** unix:///... for kubelet's --container-runtime-endpoint and --image-service-endpoint. */
  endpoint: string;
  client: CriClient;
  logFile: string;
  /** Remove every pod, stop the daemon, remove its dirs. */
  stop(): Promise<void>;
}

const hostsToml = (host: string) => `server = "http://${host}"\n[host."http://${host}"]\n  capabilities = ["pull", "resolve"]\n`;

export async function startSkiff(registryHost: string): Promise<TestRuntime> {
  const skiffd = await TestSkiffd.start({
    dirPrefix: SKIFFD_PREFIX,
    // Its own default network (kubelet moves it to the pod CIDR 10.100.0.0/24), a debug log
    // line per CRI call to find what a failed spec asked for.
    args: ['--network.bridge', 'skn0', '--network.ipam_data_dir', path.join(WORK, 'skiff-ipam'), '--cri.cgroup_parent', `${CGROUP_ROOT}/skiffd`],
  });
  for (const name of MIRRORED_REGISTRIES) skiffd.mirror(name, registryHost);
  return {
    name: 'skiff',
    endpoint: `unix://${skiffd.socket}`,
    client: skiffd.client,
    logFile: skiffd.logFile,
    stop: () => skiffd.cleanup(),
  };
}

export async function startContainerd(registryHost: string): Promise<TestRuntime> {
  const dir = path.join(WORK, 'containerd');
  fs.mkdirSync(dir, { recursive: true });
  // containerd writes no CNI config of its own: a bridge with portmap, as skiff's default has.
  const net = new TestNetwork(path.join(dir, 'net.d'), path.join(dir, 'ipam'), { portmap: true });
  for (const name of MIRRORED_REGISTRIES) {
    fs.mkdirSync(path.join(dir, 'certs.d', name), { recursive: true });
    fs.writeFileSync(path.join(dir, 'certs.d', name, 'hosts.toml'), hostsToml(registryHost));
  }
  const sock = path.join(dir, 'containerd.sock');
  fs.writeFileSync(
    path.join(dir, 'config.toml'),
    `version = 2
root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${sock}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${net.confDir}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${dir}/certs.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
`,
  );
  const logFile = path.join(dir, 'containerd.log');
  const logFd = fs.openSync(logFile, 'a');
  const proc: ChildProcess = spawn('containerd', ['--config', path.join(dir, 'config.toml')], { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  const client = new CriClient(sock);
  for (let i = 0; ; i++) {
    try {
      await client.runtime('Version', {}, { timeoutMs: 1000 });
      break;
    } catch {
      if (i > 200 || proc.exitCode !== null) throw new Error(`containerd did not start: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    name: 'containerd',
    endpoint: `unix://${sock}`,
    client,
    logFile,
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
