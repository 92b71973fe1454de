// Reading a run's JUnit report (ginkgo v1's reporter, as e2e_node.test writes it) and
// comparing runtimes spec by spec.
import * as fs from 'fs';

export type Outcome = 'passed' | 'failed' | 'skipped';

export interface RunResult {
  runtime: string;
  junit: string;
  log: string;
  /** spec name -> outcome, for the specs the focus selected. */
  specs: Map<string, Outcome>;
  /** spec name -> the first lines of its failure message. */
  failures: Map<string, string>;
  seconds: number;
}

const unescape = (s: string) =>
  s.replace(/&#34;|&quot;/g, '"').replace(/&#39;|&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#x9;/g, '\t').replace(/&#xA;/g, '\n').replace(/&amp;/g, '&');

/** The specs of a JUnit report; those whose name does not match `focus` (ginkgo lists
 * every spec of the suite, the unfocused ones as skipped) are left out. */
export function readJunit(file: string, focus: RegExp): { specs: Map<string, Outcome>; failures: Map<string, string> } {
  const specs = new Map<string, Outcome>();
  const failures = new Map<string, string>();
  const xml = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  for (const m of xml.matchAll(/<testcase\s+name="([^"]*)"[^>]*?(?:\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const name = unescape(m[1]).trim();
    const body = m[2] ?? '';
    const failed = /<failure|<error/.test(body);
    if (!failed && !focus.test(name)) continue;
    if (failed) {
      specs.set(name, 'failed');
      const msg = /<failure[^>]*message="([^"]*)"/.exec(body)?.[1] ?? /<failure[^>]*>([\s\S]*?)<\/failure>/.exec(body)?.[1] ?? '';
      failures.set(name, unescape(msg).split('\n').filter(Boolean).slice(0, 3).join(' | ').slice(0, 400));
    } else if (/<skipped/.test(body)) specs.set(name, 'skipped');
    else specs.set(name, 'passed');
  }
  return { specs, failures };
}

export function counts(r: Pick<RunResult, 'specs'>): Record<Outcome, number> {
  const c = { passed: 0, failed: 0, skipped: 0 };
  for (const o of r.specs.values()) c[o]++;
  return c;
}

/** Specs that fail on `subject` and pass on `peer`. */
export function failsOnlyOn(subject: RunResult, peer: RunResult): string[] {
  return [...subject.specs].filter(([n, o]) => o === 'failed' && peer.specs.get(n) === 'passed').map(([n]) => n).sort();
}
