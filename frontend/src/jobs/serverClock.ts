/**
 * The server's idea of "now", so that countdowns to `run_at` stay right on
 * a machine whose clock is off. Estimated from the Date header of API
 * responses (one-second resolution, hence the half-second correction and
 * the dead band: small offsets are noise and are ignored).
 */
export class ServerClock {
  private samples: number[] = [];
  private offsetMs = 0;
  private readonly localNow: () => number;

  constructor(localNow: () => number = Date.now) {
    this.localNow = localNow;
  }

  /** Records the Date header of a response and the local time it arrived. */
  sample(serverMs: number, localMs: number): void {
    // The header is truncated to the second: on average the server was half a second further.
    this.samples.push(serverMs + 500 - localMs);
    if (this.samples.length > 7) this.samples.shift();
    const sorted = [...this.samples].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    this.offsetMs = Math.abs(median) < 1500 ? 0 : median;
  }

  get offset(): number {
    return this.offsetMs;
  }

  now(): number {
    return this.localNow() + this.offsetMs;
  }
}
