// [NodeConformance] specs that fail on skiff with a reason that is not skiff's to fix here
// (checked by `npm run e2e:node -- --runtimes skiff`: any other failure fails the run).
// Keyed by the spec's full name as in the JUnit report.
export const KNOWN_FAILURES: Record<string, string> = {};
