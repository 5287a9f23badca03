/**
 * Whether the server is reachable, judged by what actually happened: a
 * response from the app or an opened event stream says yes, a failed
 * request says no. `navigator.onLine` is only a hint (it is true on a
 * network that cannot reach the server), so the browser's `offline` event
 * counts as a failure and its `online` event merely prompts a new try.
 */
export type ConnectionState = "online" | "offline";

export interface ConnectivitySnapshot {
  state: ConnectionState;
  /** Has the server ever answered since the page loaded? */
  everConnected: boolean;
  /** Last time the server answered (epoch ms). */
  lastContactAt: number | null;
}

export class Connectivity {
  private snapshot: ConnectivitySnapshot = { state: "offline", everConnected: false, lastContactAt: null };
  private readonly listeners = new Set<(next: ConnectivitySnapshot, previous: ConnectivitySnapshot) => void>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  getSnapshot(): ConnectivitySnapshot {
    return this.snapshot;
  }

  subscribe(listener: (next: ConnectivitySnapshot, previous: ConnectivitySnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A request or the stream reached the server (true) or failed to (false). */
  report(reachable: boolean): void {
    const previous = this.snapshot;
    if (reachable) {
      this.snapshot = { state: "online", everConnected: true, lastContactAt: this.now() };
      // Contact time alone is not worth a render on every request.
      if (previous.state === "online") return;
    } else {
      if (previous.state === "offline") return;
      this.snapshot = { ...previous, state: "offline" };
    }
    for (const listener of [...this.listeners]) listener(this.snapshot, previous);
  }
}
