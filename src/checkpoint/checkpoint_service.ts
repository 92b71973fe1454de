// CheckpointContainer: the running container's processes dumped by CRIU through its pod's
// shim (they keep running), its writable layer and metadata beside them, all in one
// archive at the location kubelet names. The archive is written under a temporary name
// in the same directory and renamed into place: a failed or interrupted checkpoint leaves
// no archive, and its intent lets a restarted skiffd remove what it left.
import { randomBytes } from 'crypto';
import { promises as fsp } from 'fs';
import * as path from 'path';
import type { ContainerRecord } from '../container/container_service';
import { FailedPrecondition, InvalidArgument } from '../errors';
import type { Logger } from '../log';
import type { PodRecord } from '../sandbox/pod_registry';
import type { ShimClient } from '../shim/client';
import type { IntentJournal, IntentPlans } from '../store/intents';
import { ArchiveItem, CHECKPOINT_DIR, CONFIG_DUMP, CONTAINER_LOG, DELETED_FILES, ROOTFS_DIFF, SPEC_DUMP, STATS_DUMP, writeArchive } from './archive';
import { writeRootfsDiff } from './rootfs_diff';
import type { Criu } from './criu';

/** kubelet sends 0 when its request named no timeout: the dump then gets this long. */
export const DEFAULT_CHECKPOINT_TIMEOUT_S = 300;

/** config.dump: what the container was, in the fields checkpointctl reads (as CRI-O writes
 * them), and what a restore needs besides the spec: its image and its CRI config. */
export interface ConfigDump {
  id: string;
  name: string;
  rootfsImage: string;
  rootfsImageRef: string;
  rootfsImageName: string;
  runtime: string;
  createdTime: string;
  checkpointedTime: string;
  restored: boolean;
  /** skiff's own: the pod the container ran in and the CRI config it was created with. */
  podName: string;
  podNamespace: string;
  containerConfig: ContainerRecord['config'];
}

export interface CheckpointDeps {
  state: string;
  criu: Criu;
  journal: IntentJournal;
  container: (id: string) => ContainerRecord;
  pod: (id: string) => PodRecord | undefined;
  shim: (podId: string) => ShimClient | undefined;
  /** The container's writable layer (an overlay upper dir). */
  upperDir: (containerId: string) => string;
  /** The name the container's image is known by (a repo tag), '' if none. */
  imageName: (imageId: string) => string;
  log: Logger;
}

/** Steps a checkpoint goes through, for progress ("dump", "rootfs", "archive"). */
export type CheckpointStep = 'dump' | 'rootfs' | 'archive';

/** Where the archive may go: an absolute path in an existing directory. */
async function checkLocation(location: string): Promise<void> {
  if (!location) throw new InvalidArgument('location is required');
  if (!path.isAbsolute(location)) throw new InvalidArgument(`location "${location}" must be an absolute path`);
  const dir = path.dirname(location);
  const st = await fsp.stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new InvalidArgument(`location "${location}": directory ${dir} does not exist`);
  if ((await fsp.stat(location).catch(() => null))?.isDirectory()) throw new InvalidArgument(`location "${location}" is a directory`);
}

/** Start-up recovery of a checkpoint a crash interrupted: its work dir and partial archive go. */
export async function recoverCheckpoint(plan: IntentPlans['checkpoint_container']): Promise<string> {
  await fsp.rm(plan.work, { recursive: true, force: true });
  await fsp.rm(plan.partial, { force: true });
  return 'undone';
}

export class CheckpointService {
  constructor(private readonly d: CheckpointDeps) {}

  async checkpoint(containerId: string, location: string, timeoutS: number, progress?: (step: CheckpointStep) => void): Promise<void> {
    if (!containerId) throw new InvalidArgument('container_id is required');
    const r = this.d.container(containerId);
    await checkLocation(location);
    if (r.state !== 'running') throw new FailedPrecondition(`container ${r.id} is not running (${r.state}): only a running container is checkpointed`);
    const shim = this.d.shim(r.podId);
    const pod = this.d.pod(r.podId);
    if (!shim || !pod) throw new FailedPrecondition(`pod sandbox ${r.podId} of container ${r.id} is not ready`);
    const criu = await this.d.criu.require(`checkpoint container ${r.id}`);
    const op = randomBytes(16).toString('hex');
    const work = path.join(this.d.state, 'checkpoints', op);
    const partial = path.join(path.dirname(location), `.${path.basename(location)}.${op}.partial`);
    const images = path.join(work, CHECKPOINT_DIR);
    const intent = await this.d.journal.begin('checkpoint_container', op, { containerId: r.id, work, partial });
    const started = Date.now();
    try {
      await fsp.mkdir(images, { recursive: true, mode: 0o700 });
      progress?.('dump');
      const timeoutMs = (timeoutS > 0 ? timeoutS : DEFAULT_CHECKPOINT_TIMEOUT_S) * 1000;
      // CRIU's work dir is its images dir, as runc keeps it: dump.log goes into the archive.
      await shim.checkpoint({ id: r.id, criu, imagesDir: images, workDir: images, timeoutMs });
      await fsp.rm(path.join(images, 'criu.out'), { force: true });
      progress?.('rootfs');
      const { deleted } = await writeRootfsDiff(this.d.upperDir(r.id), path.join(work, ROOTFS_DIFF));
      progress?.('archive');
      await writeArchive(partial, await this.items(r, pod, images, work, deleted));
      const fh = await fsp.open(partial, 'r');
      await fh.sync().finally(() => fh.close());
      await fsp.rename(partial, location);
      this.d.log.info('checkpointed container', { container: r.id, location, ms: Date.now() - started });
    } catch (e) {
      await fsp.rm(partial, { force: true });
      throw e;
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
      await this.d.journal.end(intent).catch(() => undefined);
    }
  }

  private async items(r: ContainerRecord, pod: PodRecord, images: string, work: string, deleted: string[]): Promise<ArchiveItem[]> {
    const imageFiles = (await fsp.readdir(images)).sort();
    const meta = pod.config.metadata;
    const dump: ConfigDump = {
      id: r.id,
      name: r.config.metadata?.name ?? '',
      rootfsImage: r.config.image?.image ?? '',
      rootfsImageRef: r.imageId,
      rootfsImageName: this.d.imageName(r.imageId) || r.config.image?.image || '',
      runtime: 'skiff',
      createdTime: new Date(r.createdAt / 1e6).toISOString(),
      checkpointedTime: new Date().toISOString(),
      restored: false,
      podName: meta?.name ?? '',
      podNamespace: meta?.namespace ?? '',
      containerConfig: r.config,
    };
    const items: ArchiveItem[] = [
      { name: `${CHECKPOINT_DIR}/`, dir: true },
      ...imageFiles.map((f) => ({ name: `${CHECKPOINT_DIR}/${f}`, file: path.join(images, f) })),
      { name: CONFIG_DUMP, data: Buffer.from(JSON.stringify(dump, null, 2)) },
      { name: SPEC_DUMP, file: path.join(r.bundle, 'config.json') },
      { name: ROOTFS_DIFF, file: path.join(work, ROOTFS_DIFF) },
      { name: DELETED_FILES, data: Buffer.from(JSON.stringify(deleted)) },
    ];
    if (imageFiles.includes(STATS_DUMP)) items.push({ name: STATS_DUMP, file: path.join(images, STATS_DUMP) });
    if (r.logPath && (await fsp.stat(r.logPath).catch(() => null))?.isFile()) items.push({ name: CONTAINER_LOG, file: r.logPath });
    return items;
  }
}
