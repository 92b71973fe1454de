// skiffd's structured log: one JSON object per line on stderr (human-readable lines
// when stderr is a terminal), filtered by level.
export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export class Logger {
  private min: number;
  constructor(
    level: Level = 'info',
    private readonly fields: Record<string, unknown> = {},
    private readonly out: NodeJS.WritableStream = process.stderr,
    private readonly human = (process.stderr as { isTTY?: boolean }).isTTY === true,
  ) {
    this.min = RANK[level];
  }

  setLevel(level: Level): void {
    this.min = RANK[level];
  }

  enabled(level: Level): boolean {
    return RANK[level] >= this.min;
  }

  /** A logger that adds these fields to every line. */
  with(fields: Record<string, unknown>): Logger {
    const l = new Logger('info', { ...this.fields, ...fields }, this.out, this.human);
    l.min = this.min;
    return l;
  }

  log(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (RANK[level] < this.min) return;
    const all = { ...this.fields, ...fields };
    if (this.human) {
      const extra = Object.entries(all).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
      this.out.write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${msg}${extra ? ' ' + extra : ''}\n`);
    } else {
      this.out.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...all }) + '\n');
    }
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log('error', msg, fields);
  }
}
