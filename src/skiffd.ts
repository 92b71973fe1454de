// skiffd's entry point: flags and config file, then the daemon until SIGTERM/SIGINT.
import { ConfigError, loadConfig, parseArgs, printConfig, SCHEMA } from './config';
import { Daemon } from './daemon';
import { Level, Logger } from './log';
import { sdNotify } from './systemd';

const USAGE = `usage: skiffd [--config FILE] [--print-config] [--<key> VALUE ...]

Every configuration key is also a flag, e.g. --root /var/lib/skiff --cri.socket /run/skiff/skiff.sock.
Keys: ${Object.keys(SCHEMA).join(', ')}
`;

async function main(): Promise<number> {
  let args;
  let config;
  try {
    args = parseArgs(process.argv.slice(2));
    if (args.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    config = await loadConfig(args);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`skiffd: ${e.message}\n`);
    return 2;
  }
  if (args.printConfig) {
    process.stdout.write(printConfig(config));
    return 0;
  }
  const log = new Logger(config.log_level as Level);
  const daemon = await Daemon.start(config, log);
  const notify = (state: string) => {
    try {
      sdNotify(state);
    } catch (e) {
      log.warn('could not notify systemd', { error: (e as Error).message });
    }
  };
  notify(`READY=1\nMAINPID=${process.pid}\nSTATUS=serving CRI on ${config['cri.socket']}`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info('stopping', { signal: sig });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  notify('STOPPING=1');
  await daemon.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`skiffd: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
