// The CRI's RuntimeService and ImageService, call by call: which handler answers each and
// with which of skiffd's services. One table for both services; a handler lives in a file
// named after its call (cri/runtime/container_create.ts, cri/image/image_pull.ts), a List
// beside its Stream. daemon.ts builds the services and serves this table.
import type { CheckpointService } from '../checkpoint/checkpoint_service';
import type { ContainerService } from '../container/container_service';
import type { ImageService } from '../image/image_service';
import type { CniNetwork } from '../network/cni';
import type { DefaultNetwork } from '../network/default_network';
import type { SandboxService } from '../sandbox/sandbox_service';
import type { KernelFeatures } from '../shim/features';
import { BlockDeviceNames } from '../stats/block_devices';
import type { ContainerStatsService } from '../stats/container_stats';
import type { PodStatsService } from '../stats/pod_stats';
import type { StreamingServer } from '../streaming/server';
import { imageFsInfo } from './image/imagefs_info';
import { listImages, streamImages } from './image/image_list';
import { pullImage } from './image/image_pull';
import { removeImage } from './image/image_remove';
import { imageStatus } from './image/image_status';
import { attach } from './runtime/container_attach';
import { checkpointContainer } from './runtime/container_checkpoint';
import { createContainer } from './runtime/container_create';
import { ContainerEvents } from './runtime/events';
import { exec } from './runtime/container_exec';
import { execSync } from './runtime/container_exec_sync';
import { containerLists } from './runtime/container_list';
import { removeContainer } from './runtime/container_remove';
import { reopenContainerLog } from './runtime/container_reopen_log';
import { startContainer } from './runtime/container_start';
import { containerStats, listContainerStats, streamContainerStats } from './runtime/container_stats';
import { containerStatus } from './runtime/container_status';
import { stopContainer } from './runtime/container_stop';
import { updateContainerResources } from './runtime/container_update_resources';
import { runtimeConfig } from './runtime/runtime_config';
import { podSandboxLists } from './runtime/sandbox_list';
import { listMetricDescriptors, listPodSandboxMetrics, streamPodSandboxMetrics } from './runtime/sandbox_metrics';
import { portForward } from './runtime/sandbox_port_forward';
import { removePodSandbox } from './runtime/sandbox_remove';
import { servedHandlerNames } from './runtime/pod_spec';
import { runPodSandbox } from './runtime/sandbox_run';
import { listPodSandboxStats, podSandboxStats, streamPodSandboxStats } from './runtime/sandbox_stats';
import { podSandboxStatus } from './runtime/sandbox_status';
import { stopPodSandbox } from './runtime/sandbox_stop';
import { updatePodSandboxResources } from './runtime/sandbox_update_resources';
import { status, usernsUnavailable } from './runtime/status';
import { updateRuntimeConfig } from './runtime/update_runtime_config';
import { version } from './runtime/version';
import type { CriHandlers } from './server';

/** What the CRI calls are answered with. */
export interface CriServices {
  sandboxes: SandboxService;
  containers: ContainerService;
  checkpoints: CheckpointService;
  images: ImageService;
  containerStats: ContainerStatsService;
  podStats: PodStatsService;
  streaming: StreamingServer;
  cni: CniNetwork;
  defaultNetwork: DefaultNetwork;
  /** The kernel features probed at start-up. */
  kernel: KernelFeatures;
  /** The runtime handler skiff serves, besides the default "". */
  runtimeHandler: string;
  /** The userns handler ('' when off) and its pool of host ids, [first, end). */
  usernsHandler: string;
  usernsPool: { first: number; end: number };
  /** What a verbose Status shows of skiffd's configuration. */
  statusInfo: () => Record<string, unknown>;
}

export function criHandlers(s: CriServices): CriHandlers {
  const { sandboxes, containers, images, containerStats: ctrStats, podStats, streaming, runtimeHandler } = s;
  const handlers = {
    default: runtimeHandler,
    userns: s.usernsHandler,
    usernsUnavailable: s.usernsHandler ? usernsUnavailable(s.kernel) : '',
    ...(s.usernsHandler ? { usernsPool: s.usernsPool } : {}),
  };
  const served = servedHandlerNames(handlers);
  const events = new ContainerEvents(sandboxes, containers);
  const devices = new BlockDeviceNames();
  return {
    runtime: {
      Version: version(),
      RuntimeConfig: runtimeConfig(),
      Status: status(s.cni, handlers, s.kernel, s.statusInfo),
      UpdateRuntimeConfig: updateRuntimeConfig(s.defaultNetwork),
      RunPodSandbox: runPodSandbox(sandboxes, handlers),
      StopPodSandbox: stopPodSandbox(sandboxes),
      RemovePodSandbox: removePodSandbox(sandboxes),
      PodSandboxStatus: podSandboxStatus(sandboxes, containers),
      ...podSandboxLists(sandboxes),
      UpdatePodSandboxResources: updatePodSandboxResources(sandboxes),
      CreateContainer: createContainer(containers),
      StartContainer: startContainer(containers),
      StopContainer: stopContainer(containers),
      RemoveContainer: removeContainer(containers),
      ContainerStatus: containerStatus(containers),
      ...containerLists(containers),
      UpdateContainerResources: updateContainerResources(containers),
      ReopenContainerLog: reopenContainerLog(containers),
      CheckpointContainer: checkpointContainer(s.checkpoints),
      ExecSync: execSync(containers),
      Exec: exec(containers, streaming),
      Attach: attach(containers, streaming),
      PortForward: portForward(sandboxes, streaming),
      GetContainerEvents: events.handler(),
      ContainerStats: containerStats(containers, ctrStats),
      ListContainerStats: listContainerStats(containers, ctrStats),
      StreamContainerStats: streamContainerStats(containers, ctrStats),
      PodSandboxStats: podSandboxStats(sandboxes, containers, podStats),
      ListPodSandboxStats: listPodSandboxStats(sandboxes, containers, podStats),
      StreamPodSandboxStats: streamPodSandboxStats(sandboxes, containers, podStats),
      ListMetricDescriptors: listMetricDescriptors(),
      ListPodSandboxMetrics: listPodSandboxMetrics(sandboxes, containers, podStats, devices),
      StreamPodSandboxMetrics: streamPodSandboxMetrics(sandboxes, containers, podStats, devices),
    },
    image: {
      ListImages: listImages(images, served, () => containers.generation()),
      StreamImages: streamImages(images, served),
      ImageStatus: imageStatus(images, served),
      PullImage: pullImage(images, served),
      RemoveImage: removeImage(images, served),
      ImageFsInfo: imageFsInfo(images),
    },
  };
}
