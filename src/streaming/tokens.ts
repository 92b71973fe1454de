// Single-use tokens for streaming URLs: the CRI Exec/Attach/PortForward call stores its
// validated request under a random token; the first request to the URL takes it; a
// token left unused expires after a minute.
import { randomBytes } from 'crypto';

export class TokenCache<T> {
  private readonly entries = new Map<string, { value: T; expires: number }>();

  constructor(
    private readonly ttlMs = 60_000,
    private readonly max = 1000,
  ) {}

  put(value: T): string {
    this.sweep();
    if (this.entries.size >= this.max) throw new Error(`too many pending streaming requests (${this.max})`);
    const token = randomBytes(24).toString('base64url');
    this.entries.set(token, { value, expires: Date.now() + this.ttlMs });
    return token;
  }

  /** The request behind a token, once: a second take, or a late one, finds nothing. */
  take(token: string): T | undefined {
    const e = this.entries.get(token);
    if (!e) return undefined;
    this.entries.delete(token);
    return e.expires >= Date.now() ? e.value : undefined;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, e] of this.entries) if (e.expires < now) this.entries.delete(k);
  }
}
