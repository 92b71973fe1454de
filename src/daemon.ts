// skiffd's wiring: builds the stores and services from the configuration, serves the CRI
// socket, and stops without touching running pods (their shims outlive skiffd).
import { promises as fsp } from 'fs';
import * as path from 'path';
import type { SkiffConfig } from './config';
import { CriServer } from './cri/server';
import { imageHandlers } from './cri/image';
import { runtimeConfig } from './cri/runtime/runtime_config';
import { version } from './cri/runtime/version';
import { ImageService } from './image/image_service';
import { diskUsage } from './image/snapshotter';
import type { Logger } from './log';

export class Daemon {
  private constructor(
    readonly config: SkiffConfig,
    readonly images: ImageService,
    private readonly server: CriServer,
    private readonly log: Logger,
  ) {}

  static async start(config: SkiffConfig, log: Logger): Promise<Daemon> {
    await fsp.mkdir(config.root, { recursive: true, mode: 0o711 });
    await fsp.mkdir(config.state, { recursive: true, mode: 0o711 });
    const images = new ImageService({
      root: config.root,
      registry: {
        configPath: config['image.config_path'],
        stallTimeoutMs: config['image.stall_timeout_s'] * 1000,
        attempts: config['image.attempts'],
      },
      parallelLayers: config['image.parallel_layers'],
      warn: (msg) => log.warn(msg),
    });
    await images.init();
    const containersDir = path.join(config.root, 'snapshots', 'containers');
    const containerFs = async () => ({ mountpoint: containersDir, ...(await diskUsage(containersDir)) });
    const server = new CriServer(
      {
        runtime: { Version: version(), RuntimeConfig: runtimeConfig() },
        image: imageHandlers(images, containerFs),
      },
      log,
    );
    await server.listen(config['cri.socket'], parseInt(config['cri.socket_mode'], 8));
    log.info('skiffd serving', { socket: config['cri.socket'], root: config.root, state: config.state });
    return new Daemon(config, images, server, log);
  }

  /** Stop serving. Pods keep running: their shims do not depend on skiffd. */
  async stop(): Promise<void> {
    await this.server.close();
    await this.images.close();
    this.log.info('skiffd stopped');
  }
}
