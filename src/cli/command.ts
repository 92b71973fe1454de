// What every CLI command gets: the socket, the output format and lazily made clients.
import type { AdminClient } from '../admin/client';
import type { CriClient } from '../cri/client';
import { OutputFormat, print } from './output';

import type * as grpc from '@grpc/grpc-js';

export class UsageError extends Error {}

/** A failure the CLI finds itself, reported like skiffd's: with a gRPC code (exit code 1). */
export class CliFailure extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(details);
  }
}

export interface Env {
  socket: string;
  output: OutputFormat;
  cri(): CriClient;
  admin(): AdminClient;
}

export type Flags = Record<string, string | boolean | undefined>;
export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

export interface Command {
  usage: string;
  summary: string;
  /** The command's own flags (-o/--output is every command's). */
  flags?: FlagSpec;
  /** Takes its arguments unparsed (exec: the command to run has flags of its own). */
  raw?: boolean;
  /** Resolves to the exit code, or nothing for 0. */
  run(args: string[], env: Env, flags: Flags): Promise<void | number>;
}

export function oneArg(args: string[], what: string): string {
  if (args.length !== 1) throw new UsageError(`expected one ${what}, got ${args.length}`);
  return args[0];
}

/** Act on each argument in turn. A table prints a line per argument as it is done; JSON
 * and YAML print `{ [key]: [values] }` once all are done. */
export async function forEachArg(env: Env, args: string[], what: string, key: string, act: (arg: string) => Promise<{ value: string; line: string }>): Promise<void> {
  if (!args.length) throw new UsageError(`expected at least one ${what}`);
  const done: string[] = [];
  for (const arg of args) {
    const r = await act(arg);
    done.push(r.value);
    if (env.output === 'table') process.stdout.write(`${r.line}\n`);
  }
  if (env.output !== 'table') print(env.output, { [key]: done }, () => '');
}
