// How the CLI prints: a table for people, JSON or YAML for scripts (`-o json|yaml`).
import { dump } from 'js-yaml';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

/** Columns padded to their widest cell, two spaces apart; the last one is not padded. */
export function table<T>(rows: T[], columns: Column<T>[]): string {
  const cells = [columns.map((c) => c.header), ...rows.map((r) => columns.map((c) => c.value(r)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  return cells.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

export function print<T>(format: OutputFormat, data: T, rows: () => string): void {
  if (format === 'json') process.stdout.write(JSON.stringify(data, null, 2) + '\n');
  else if (format === 'yaml') process.stdout.write(dump(JSON.parse(JSON.stringify(data)), { noRefs: true, lineWidth: -1 }));
  else process.stdout.write(rows());
}

/** 1234567 -> "1.2 MB" (decimal units, as crictl and docker print sizes). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** sha256:abcdef... -> abcdef012345 (the 12-hex short id people read). */
export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
