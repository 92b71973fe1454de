// Failpoints: named steps of skiffd's operations where a test makes the daemon SIGKILL
// itself or the step fail, to prove that a restart finishes or undoes whatever was in
// flight (as containerd's integration failpoints do). Off unless configured:
// `debug.failpoints` or SKIFF_FAILPOINTS, a list of `step=kill` or `step=error`.
// Steps named `shim.<step>` are the shim's own (create, start and exec): they are passed
// to every shim skiffd starts, which then dies (SIGKILL) at that step.
import { Internal } from './errors';

/** Every step, in the order each operation passes them. The e2e suite walks this list.
 * run_pod passes dir and shm, shim to netns, and cni_pending in three branches at once
 * (see SandboxService.doRun): a kill at one finds the others anywhere up to their end. */
export const FAILPOINTS = {
  run_pod: ['journaled', 'dir', 'shm', 'shim', 'netns_file', 'netns', 'cni_pending', 'cni_plugin', 'network', 'recorded'],
  stop_pod: ['journaled', 'containers', 'network', 'shim', 'recorded'],
  remove_pod: ['journaled', 'containers', 'cgroups', 'dir', 'recorded'],
  create_container: ['journaled', 'rootfs', 'image_volumes', 'spec', 'shim', 'recorded'],
  start_container: ['shim', 'recorded'],
  remove_container: ['journaled', 'stopped', 'shim', 'rootfs', 'recorded'],
  pull_image: ['journaled', 'blob', 'layer', 'recorded'],
  shim: ['create.cgroup', 'create.spawned', 'create.ready', 'start.go', 'exec.spawned'],
} as const;

export type Operation = keyof typeof FAILPOINTS;
export type FailpointName = { [K in Operation]: `${K}.${(typeof FAILPOINTS)[K][number]}` }[Operation];
export type FailpointAction = 'kill' | 'error';

export const ALL_FAILPOINTS: FailpointName[] = (Object.keys(FAILPOINTS) as Operation[]).flatMap((op) => FAILPOINTS[op].map((s) => `${op}.${s}` as FailpointName));

const armed = new Map<string, FailpointAction>();

/** Arm the failpoints of a `step=action` list; an unknown step or action is an error. */
export function armFailpoints(specs: string[]): void {
  armed.clear();
  for (const s of specs.map((x) => x.trim()).filter(Boolean)) {
    const [name, action = 'kill'] = s.split('=');
    if (!(ALL_FAILPOINTS as string[]).includes(name)) throw new Error(`failpoint "${name}" is not a step (see src/failpoints.ts)`);
    if (action !== 'kill' && action !== 'error') throw new Error(`failpoint "${name}": action must be kill or error, not "${action}"`);
    if (name.startsWith('shim.') && action !== 'kill') throw new Error(`failpoint "${name}": the shim's steps only kill`);
    // Once the outcome is recorded, the operation has succeeded: nothing is left to fail.
    if (name.endsWith('.recorded') && action !== 'kill') throw new Error(`failpoint "${name}": a step after the outcome is recorded only kills`);
    armed.set(name, action);
  }
}

/** The shim's armed steps, for its environment (SKIFF_SHIM_FAILPOINTS), or undefined. */
export function shimFailpoints(): string | undefined {
  const steps = [...armed.keys()].filter((n) => n.startsWith('shim.')).map((n) => n.slice('shim.'.length));
  return steps.length ? steps.join(',') : undefined;
}

/** Pass a step: nothing, unless a test armed it. */
export function failpoint(name: FailpointName): void {
  if (armed.size === 0) return;
  const action = armed.get(name);
  if (!action) return;
  if (action === 'kill') {
    process.stderr.write(`failpoint ${name}: SIGKILL\n`);
    process.kill(process.pid, 'SIGKILL');
  }
  throw new Internal(`failpoint ${name}`);
}
