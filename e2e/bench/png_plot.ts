// Plots for a person to look at beside a benchmark's JSON: grouped bars and grouped box
// plots on a log axis, drawn pixel by pixel (a 5x7 bitmap font for the labels) and
// written as PNG with pngjs.
import { PNG } from 'pngjs';

export type Rgb = [number, number, number];

/** The glyphs of the font: 7 rows of 5 bits, the leftmost pixel the highest bit. Letters
 * are upper case only; lower case is drawn as upper case. */
const FONT: Record<string, number[]> = {
  A: [14, 17, 17, 31, 17, 17, 17], B: [30, 17, 17, 30, 17, 17, 30], C: [14, 17, 16, 16, 16, 17, 14],
  D: [30, 17, 17, 17, 17, 17, 30], E: [31, 16, 16, 30, 16, 16, 31], F: [31, 16, 16, 30, 16, 16, 16],
  G: [14, 17, 16, 23, 17, 17, 15], H: [17, 17, 17, 31, 17, 17, 17], I: [14, 4, 4, 4, 4, 4, 14],
  J: [7, 2, 2, 2, 2, 18, 12], K: [17, 18, 20, 24, 20, 18, 17], L: [16, 16, 16, 16, 16, 16, 31],
  M: [17, 27, 21, 21, 17, 17, 17], N: [17, 17, 25, 21, 19, 17, 17], O: [14, 17, 17, 17, 17, 17, 14],
  P: [30, 17, 17, 30, 16, 16, 16], Q: [14, 17, 17, 17, 21, 18, 13], R: [30, 17, 17, 30, 20, 18, 17],
  S: [15, 16, 16, 14, 1, 1, 30], T: [31, 4, 4, 4, 4, 4, 4], U: [17, 17, 17, 17, 17, 17, 14],
  V: [17, 17, 17, 17, 17, 10, 4], W: [17, 17, 17, 21, 21, 21, 10], X: [17, 17, 10, 4, 10, 17, 17],
  Y: [17, 17, 17, 10, 4, 4, 4], Z: [31, 1, 2, 4, 8, 16, 31],
  '0': [14, 17, 19, 21, 25, 17, 14], '1': [4, 12, 4, 4, 4, 4, 14], '2': [14, 17, 1, 2, 4, 8, 31],
  '3': [31, 2, 4, 2, 1, 17, 14], '4': [2, 6, 10, 18, 31, 2, 2], '5': [31, 16, 30, 1, 1, 17, 14],
  '6': [6, 8, 16, 30, 17, 17, 14], '7': [31, 1, 2, 4, 8, 8, 8], '8': [14, 17, 17, 14, 17, 17, 14],
  '9': [14, 17, 17, 15, 1, 2, 12],
  ' ': [0, 0, 0, 0, 0, 0, 0], '.': [0, 0, 0, 0, 0, 12, 12], '-': [0, 0, 0, 31, 0, 0, 0],
  _: [0, 0, 0, 0, 0, 0, 31], '/': [0, 1, 2, 4, 8, 16, 0], ':': [0, 12, 12, 0, 12, 12, 0],
  '(': [2, 4, 8, 8, 8, 4, 2], ')': [8, 4, 2, 2, 2, 4, 8], '%': [24, 25, 2, 4, 8, 19, 3],
  '=': [0, 0, 31, 0, 31, 0, 0], ',': [0, 0, 0, 0, 12, 4, 8], '+': [0, 4, 4, 31, 4, 4, 0],
  '<': [2, 4, 8, 16, 8, 4, 2], '>': [8, 4, 2, 1, 2, 4, 8], '?': [14, 17, 1, 2, 4, 0, 4],
};
/** Pixels of one glyph cell at scale 1: 5 wide and a column of space (7 high). */
const CELL_W = 6;

/** An RGB image to draw on; white to start with. */
export class Canvas {
  readonly png: PNG;

  constructor(readonly width: number, readonly height: number) {
    this.png = new PNG({ width, height });
    this.png.data.fill(255);
  }

  pixel(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 4;
    this.png.data[i] = c[0];
    this.png.data[i + 1] = c[1];
    this.png.data[i + 2] = c[2];
    this.png.data[i + 3] = 255;
  }

  rect(x0: number, y0: number, x1: number, y1: number, c: Rgb): void {
    const [xa, xb] = [Math.round(Math.min(x0, x1)), Math.round(Math.max(x0, x1))];
    const [ya, yb] = [Math.round(Math.min(y0, y1)), Math.round(Math.max(y0, y1))];
    for (let y = ya; y <= yb; y++) for (let x = xa; x <= xb; x++) this.pixel(x, y, c);
  }

  hline(x0: number, x1: number, y: number, c: Rgb, dash = 0): void {
    for (let x = Math.round(Math.min(x0, x1)); x <= Math.max(x0, x1); x++) if (!dash || Math.floor(x / dash) % 2 === 0) this.pixel(x, y, c);
  }

  vline(x: number, y0: number, y1: number, c: Rgb): void {
    for (let y = Math.round(Math.min(y0, y1)); y <= Math.max(y0, y1); y++) this.pixel(x, y, c);
  }

  /** Text with its top left corner at (x, y); returns its width. */
  text(x: number, y: number, s: string, c: Rgb, scale = 2): number {
    const chars = [...s.toUpperCase()];
    chars.forEach((ch, k) => {
      const rows = FONT[ch] ?? FONT['?'];
      rows.forEach((bits, r) => {
        for (let b = 0; b < 5; b++) if (bits & (1 << (4 - b))) this.rect(x + (k * CELL_W + b) * scale, y + r * scale, x + (k * CELL_W + b) * scale + scale - 1, y + r * scale + scale - 1, c);
      });
    });
    return textWidth(s, scale);
  }

  encode(): Buffer {
    return PNG.sync.write(this.png);
  }
}

export function textWidth(s: string, scale = 2): number {
  return [...s].length * CELL_W * scale;
}

/** One box of a box plot: the whiskers, the box's edges and the median line. */
export interface Box {
  low: number;
  q1: number;
  median: number;
  q3: number;
  high: number;
}

/** One bar (a value) or box of a group; null: not measured (drawn as "n/m"). */
export interface Item {
  series: string;
  value: number | Box | null;
}

export interface Group {
  label: string;
  items: Item[];
}

export interface ChartSpec {
  title: string;
  /** The y axis, e.g. "ms" or "x victim alone". */
  yLabel: string;
  series: { name: string; color: Rgb }[];
  groups: Group[];
  /** A dashed horizontal line, e.g. at 1 on a ratio chart. */
  reference?: number;
}

const BLACK: Rgb = [0, 0, 0];
const GREY: Rgb = [200, 200, 200];
const MARGIN = { left: 90, right: 20, top: 64, bottom: 90 };
const SLOT = 26;
const GROUP_GAP = 24;

/** Ticks of a log axis from lo to hi: 1, 2 and 5 times the powers of ten. */
export function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) for (const m of [1, 2, 5]) {
    const v = m * 10 ** e;
    if (v >= lo && v <= hi) out.push(v);
  }
  return out;
}

export function tickText(v: number): string {
  if (v >= 1000) return `${v / 1000}K`;
  return String(Number(v.toPrecision(3)));
}

/** The values an item puts on the axis. */
function itemValues(v: number | Box | null): number[] {
  if (v === null) return [];
  return typeof v === 'number' ? [v] : [v.low, v.q1, v.median, v.q3, v.high];
}

/** Grouped bars (items with a number) and boxes (items with a Box) on a log y axis; a PNG. */
export function groupedChart(spec: ChartSpec): Buffer {
  const slots = spec.groups.reduce((n, g) => n + g.items.length, 0);
  const legendW = spec.series.reduce((w, s) => w + 44 + textWidth(s.name), 0);
  const plotW = Math.max(400, slots * SLOT + spec.groups.length * GROUP_GAP, legendW - MARGIN.right, textWidth(spec.title) + 16 - MARGIN.left - MARGIN.right);
  const width = MARGIN.left + plotW + MARGIN.right;
  const height = 520;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const c = new Canvas(width, height);
  const values = spec.groups.flatMap((g) => g.items.flatMap((i) => itemValues(i.value))).filter((v) => v > 0 && Number.isFinite(v));
  if (spec.reference !== undefined) values.push(spec.reference);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values, 1e9)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values, lo * 10)));
  const y = (v: number) => MARGIN.top + plotH - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;

  c.text(8, 10, spec.title, BLACK);
  for (const t of logTicks(lo, hi)) {
    c.hline(MARGIN.left, MARGIN.left + plotW, y(t), GREY);
    const label = tickText(t);
    c.text(MARGIN.left - 8 - textWidth(label), y(t) - 7, label, BLACK);
  }
  c.text(8, MARGIN.top - 26, spec.yLabel, BLACK);
  c.vline(MARGIN.left, MARGIN.top, MARGIN.top + plotH, BLACK);
  c.hline(MARGIN.left, MARGIN.left + plotW, MARGIN.top + plotH, BLACK);
  if (spec.reference !== undefined) c.hline(MARGIN.left, MARGIN.left + plotW, y(spec.reference), BLACK, 6);

  const color = (name: string) => spec.series.find((s) => s.name === name)?.color ?? BLACK;
  let x = MARGIN.left + GROUP_GAP / 2;
  for (const g of spec.groups) {
    const groupW = g.items.length * SLOT;
    for (const [k, item] of g.items.entries()) {
      const x0 = x + k * SLOT + 3;
      const x1 = x0 + SLOT - 6;
      const v = item.value;
      if (v === null) {
        c.text(x0, MARGIN.top + plotH - 40, 'N', BLACK, 1);
        c.text(x0, MARGIN.top + plotH - 30, '/M', BLACK, 1);
      } else if (typeof v === 'number') {
        c.rect(x0, y(v), x1, MARGIN.top + plotH - 1, color(item.series));
      } else {
        const mid = (x0 + x1) / 2;
        c.vline(mid, y(v.high), y(v.q3), BLACK);
        c.vline(mid, y(v.q1), y(v.low), BLACK);
        c.hline(x0 + 4, x1 - 4, y(v.high), BLACK);
        c.hline(x0 + 4, x1 - 4, y(v.low), BLACK);
        c.rect(x0, y(v.q3), x1, y(v.q1), color(item.series));
        c.hline(x0, x1, y(v.median), BLACK);
        c.hline(x0, x1, y(v.median) + 1, BLACK);
      }
    }
    c.text(x + groupW / 2 - textWidth(g.label) / 2, MARGIN.top + plotH + 10, g.label, BLACK);
    x += groupW + GROUP_GAP;
  }

  let lx = MARGIN.left;
  const ly = height - 36;
  for (const s of spec.series) {
    c.rect(lx, ly, lx + 14, ly + 14, s.color);
    lx += 20 + c.text(lx + 20, ly, s.name, BLACK) + 24;
  }
  return c.encode();
}
