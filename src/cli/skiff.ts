#!/usr/bin/env node
// The skiff CLI for node operators: talks CRI (and skiff's own API) to skiffd's socket
// with the same client as the e2e suite.
//   skiff [--socket PATH] [-o table|json] COMMAND [ARGS]
// Exit codes: 0 done; 1 skiffd refused or failed the operation (the message names
// the gRPC code); 2 bad usage; 69 skiffd unreachable.
import * as fs from 'fs';
import * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'util';
import { AdminClient } from '../admin/client';
import { CriClient } from '../cri/client';
import type { Image } from '../cri/gen/cri';
import { CHECKPOINT_COMMANDS } from './checkpoint';
import { Command, Env, Flags, forEachArg, oneArg, UsageError } from './command';
import { EXEC_COMMANDS } from './exec';
import { LOG_COMMANDS } from './logs';
import { humanSize, OUTPUT_FORMATS, OutputFormat, print, shortId, table } from './output';
import { WORKLOAD_COMMANDS } from './workloads';

const DEFAULT_SOCKET = '/run/skiff/skiff.sock';
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_UNAVAILABLE = 69;

function printImages(env: Env, images: Image[]): void {
  print(env.output, images, () =>
    table(images, [
      { header: 'IMAGE', value: (i) => (i.repo_tags[0] ?? '<none>').replace(/:[^:/]+$/, '') },
      { header: 'TAG', value: (i) => /:([^:/]+)$/.exec(i.repo_tags[0] ?? '')?.[1] ?? '<none>' },
      { header: 'IMAGE ID', value: (i) => shortId(i.id) },
      { header: 'SIZE', value: (i) => humanSize(Number(i.size)) },
      { header: 'PINNED', value: (i) => (i.pinned ? 'yes' : 'no') },
    ]),
  );
}

/** One line on stderr, redrawn while the pull runs: a bar, bytes fetched and layers done. */
export function progressLine(ref: string, blobs: { size: number; fetched: number; done: boolean }[], width = 30): string {
  const total = blobs.reduce((n, b) => n + b.size, 0);
  const got = blobs.reduce((n, b) => n + (b.done ? b.size : Math.min(b.fetched, b.size)), 0);
  const filled = total ? Math.round((got / total) * width) : 0;
  const done = blobs.filter((b) => b.done).length;
  return `${ref} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${humanSize(got)} / ${humanSize(total)}, ${done}/${blobs.length} blobs`;
}

async function withProgress<T>(env: Env, ref: string, pulling: Promise<T>): Promise<T> {
  let finished = false;
  let last = '';
  const draw = async () => {
    const p = await env.admin().pullProgress(ref).catch(() => null);
    if (finished || !p?.active || !p.blobs.length) return;
    const line = progressLine(ref, p.blobs);
    if (line !== last) process.stderr.write(`\r${line}`);
    last = line;
  };
  const timer = setInterval(() => void draw(), 200);
  try {
    return await pulling;
  } finally {
    finished = true;
    clearInterval(timer);
    if (last) process.stderr.write(process.stderr.isTTY ? '\r\x1b[K' : '\n');
  }
}

const COMMANDS: Record<string, Command> = {
  images: {
    usage: 'images [REF]',
    summary: 'list images (or the one REF names)',
    async run(args, env) {
      if (args.length > 1) throw new UsageError('expected at most one image reference');
      const res = await env.cri().image('ListImages', { filter: args[0] ? { image: { image: args[0] } } : null });
      printImages(env, res.images);
    },
  },
  pull: {
    usage: 'pull [--progress] REF',
    summary: 'pull an image from its registry (a progress bar on a terminal, or with --progress)',
    flags: { progress: { type: 'boolean' } },
    async run(args, env, flags) {
      const ref = oneArg(args, 'image reference');
      const pulling = env.cri().image('PullImage', { image: { image: ref } }, { timeoutMs: 60 * 60_000 });
      const res = flags.progress || process.stderr.isTTY ? await withProgress(env, ref, pulling) : await pulling;
      print(env.output, { image: ref, id: res.image_ref }, () => `${ref}: ${res.image_ref}\n`);
    },
  },
  import: {
    usage: 'import FILE|-',
    summary: 'load an OCI image layout or `docker save` archive (- reads stdin)',
    async run(args, env) {
      const file = oneArg(args, 'archive file');
      const source = file === '-' ? process.stdin : fs.createReadStream(file, { highWaterMark: 1024 * 1024 });
      const images = await env.admin().importArchive(source);
      print(env.output, images, () => images.map((i) => `imported ${i.repo_tags.join(', ') || '<untagged>'} (${i.id})\n`).join(''));
    },
  },
  rmi: {
    usage: 'rmi REF...',
    summary: 'remove images',
    run: (args, env) =>
      forEachArg(env, args, 'image reference', 'removed', async (ref) => {
        await env.cri().image('RemoveImage', { image: { image: ref } });
        return { value: ref, line: `removed ${ref}` };
      }),
  },
  version: {
    usage: 'version',
    summary: "skiffd's runtime name and versions",
    async run(args, env) {
      if (args.length) throw new UsageError('version takes no arguments');
      const v = await env.cri().runtime('Version', { version: 'v1' });
      print(env.output, v, () => `${v.runtime_name} ${v.runtime_version} (CRI ${v.runtime_api_version})\n`);
    },
  },
  ...WORKLOAD_COMMANDS,
  ...LOG_COMMANDS,
  ...EXEC_COMMANDS,
  ...CHECKPOINT_COMMANDS,
};

// `skiff images import FILE` is the spelling the docs use; `skiff import` is short for it.
const ALIASES: Record<string, string[]> = { 'images import': ['import'], 'images ls': ['images'], 'images pull': ['pull'], 'images rm': ['rmi'] };

function help(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length)) + 2;
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}${c.summary}`);
  return [
    'usage: skiff [--socket PATH] [-o table|json|yaml] COMMAND [ARGS]',
    '',
    'commands:',
    ...lines,
    '',
    `--socket defaults to $SKIFF_SOCKET or ${DEFAULT_SOCKET}.`,
    'exit codes: 0 done, 1 the operation failed, 2 bad usage, 69 skiffd unreachable.',
    '',
  ].join('\n');
}

function resolve(words: string[]): { command: Command; args: string[] } {
  const pair = words.slice(0, 2).join(' ');
  const [name, ...rest] = ALIASES[pair] ? [...ALIASES[pair], ...words.slice(2)] : words;
  const command = COMMANDS[name];
  if (!command) throw new UsageError(name ? `unknown command "${name}"` : 'no command given');
  return { command, args: rest };
}

export async function main(argv: string[]): Promise<number> {
  let env: Env | undefined;
  let cri: CriClient | undefined;
  let admin: AdminClient | undefined;
  try {
    // Global options come before the command word; the rest is the command's.
    let i = 0;
    while (i < argv.length && argv[i].startsWith('-') && argv[i] !== '-') i += /^(-s|--socket|-o|--output)$/.test(argv[i]) ? 2 : 1;
    const { values } = parseArgs({
      args: argv.slice(0, i),
      options: {
        socket: { type: 'string', short: 's' },
        output: { type: 'string', short: 'o', default: 'table' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(help());
      return 0;
    }
    const positionals = argv.slice(i);
    const { command, args: raw } = resolve(positionals);
    let args = raw;
    let flags: Flags = {};
    let outputFlag = values.output;
    if (!command.raw) {
      const parsed = parseArgs({ args: raw, allowPositionals: true, options: { ...command.flags, output: { type: 'string', short: 'o' } } });
      args = parsed.positionals;
      flags = parsed.values;
      if (typeof parsed.values.output === 'string') outputFlag = parsed.values.output;
    }
    const output = outputFlag as OutputFormat;
    if (!OUTPUT_FORMATS.includes(output)) throw new UsageError(`-o: expected ${OUTPUT_FORMATS.join(', ')}, got "${outputFlag}"`);
    const socket = values.socket ?? process.env.SKIFF_SOCKET ?? DEFAULT_SOCKET;
    env = {
      socket,
      output,
      cri: () => (cri ??= new CriClient(socket)),
      admin: () => (admin ??= new AdminClient(socket)),
    };
    return (await command.run(args, env, flags)) ?? 0;
  } catch (e) {
    if (e instanceof UsageError || (e as NodeJS.ErrnoException).code?.toString().startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`skiff: ${(e as Error).message}\n\n${help()}`);
      return EXIT_USAGE;
    }
    const code = (e as grpc.ServiceError).code;
    if (code === grpc.status.UNAVAILABLE) {
      process.stderr.write(`skiff: cannot reach skiffd at ${env?.socket}: ${(e as grpc.ServiceError).details}\n`);
      return EXIT_UNAVAILABLE;
    }
    if (typeof code === 'number') {
      process.stderr.write(`skiff: ${grpc.status[code]}: ${(e as grpc.ServiceError).details}\n`);
      return EXIT_FAILED;
    }
    process.stderr.write(`skiff: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_FAILED;
  } finally {
    cri?.close();
    admin?.close();
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
