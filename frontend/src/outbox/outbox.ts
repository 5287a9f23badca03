/**
 * The outbox: creates that the server has not confirmed yet.
 *
 * An entry is written to storage before its first send, so a create made
 * offline, or interrupted by a reload, is still there on the next page load.
 * Each entry carries one Idempotency-Key, generated once and reused for
 * every attempt: however often it is sent, the server makes one job of it.
 * An entry leaves the outbox only when the server has answered for it:
 * a 2xx (sent) or a 4xx that repeating cannot fix (rejected). Anything else
 * (no connection, 409 still in progress, 429, 5xx) is retried with capped,
 * jittered backoff, or sooner when `wake()` says the server is back.
 *
 * Entries are sent one at a time, oldest first, so jobs are created in the
 * order they were asked for and no entry is ever in flight twice at once
 * from the same page.
 */
import { DEFAULT_BACKOFF, retryDelay, type BackoffPolicy, type Random } from "../api/retry";
import { realTimers, type Timers } from "../timers";

export type SendOutcome<R> =
  | { kind: "sent"; result: R }
  | { kind: "rejected"; status: number; message: string }
  | { kind: "retry"; retryAfterMs: number | null; message: string };

export interface OutboxEntry<B> {
  /** The Idempotency-Key of every attempt of this create. */
  key: string;
  body: B;
  /** When the user asked for it (ISO 8601). */
  createdAt: string;
  attempts: number;
  lastError: string | null;
}

/** The part of the Web Storage API the outbox needs. */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export type OutboxEvent<B, R> =
  | { type: "sent"; entry: OutboxEntry<B>; result: R }
  | { type: "rejected"; entry: OutboxEntry<B>; status: number; message: string };

export interface OutboxOptions<B, R> {
  /** null keeps entries in memory only (storage unavailable). */
  storage: KeyValueStorage | null;
  storageKey?: string;
  send: (entry: OutboxEntry<B>) => Promise<SendOutcome<R>>;
  newKey?: () => string;
  timers?: Timers;
  policy?: BackoffPolicy;
  random?: Random;
  now?: () => number;
}

export interface OutboxState<B> {
  entries: readonly OutboxEntry<B>[];
  /** Key of the entry whose request is in flight, if any. */
  sendingKey: string | null;
  /** When the next attempt is scheduled after a failure (epoch ms), if any. */
  retryAt: number | null;
}

const STORAGE_VERSION = 1;
export const DEFAULT_OUTBOX_KEY = "jobs.outbox.v1";

export class Outbox<B, R> {
  private readonly storage: KeyValueStorage | null;
  private readonly storageKey: string;
  private readonly sendEntry: (entry: OutboxEntry<B>) => Promise<SendOutcome<R>>;
  private readonly newKey: () => string;
  private readonly timers: Timers;
  private readonly policy: BackoffPolicy;
  private readonly random: Random;
  private readonly now: () => number;

  private state: OutboxState<B>;
  private failures = 0;
  private retryTimer: unknown = null;
  private running: Promise<void> | null = null;
  private runAgain = false;
  private disposed = false;
  private readonly stateListeners = new Set<() => void>();
  private readonly eventListeners = new Set<(event: OutboxEvent<B, R>) => void>();

  constructor(options: OutboxOptions<B, R>) {
    this.storage = options.storage;
    this.storageKey = options.storageKey ?? DEFAULT_OUTBOX_KEY;
    this.sendEntry = options.send;
    this.newKey = options.newKey ?? (() => crypto.randomUUID());
    this.timers = options.timers ?? realTimers;
    this.policy = options.policy ?? DEFAULT_BACKOFF;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.state = { entries: this.read() ?? [], sendingKey: null, retryAt: null };
  }

  getState(): OutboxState<B> {
    return this.state;
  }

  /** Called on every state change (for rendering). */
  subscribe(listener: () => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Called when an entry gets its final answer. */
  onEvent(listener: (event: OutboxEvent<B, R>) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Stores a new create and starts sending it. */
  add(body: B): OutboxEntry<B> {
    const entry: OutboxEntry<B> = {
      key: this.newKey(),
      body,
      createdAt: new Date(this.now()).toISOString(),
      attempts: 0,
      lastError: null,
    };
    this.mutate((entries) => [...entries, entry]);
    void this.flush();
    return entry;
  }

  /**
   * Sends every entry in order until the outbox is empty or an attempt
   * fails in a way worth retrying (then a retry is scheduled). Calls made
   * while a flush runs join it, and it runs once more at its end.
   */
  flush(): Promise<void> {
    if (this.disposed) return Promise.resolve();
    if (this.running) {
      this.runAgain = true;
      return this.running;
    }
    this.cancelRetry();
    this.running = (async () => {
      try {
        do {
          this.runAgain = false;
          await this.drain();
        } while (this.runAgain && this.state.retryAt === null && !this.disposed);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  /** The server looks reachable again: retry now rather than at the scheduled time. */
  wake(): void {
    if (this.state.entries.length === 0 || this.running) return;
    void this.flush();
  }

  /** Picks up changes another tab made to the same storage. */
  reloadFromStorage(): void {
    const entries = this.read();
    if (entries === null) return;
    this.setState({ ...this.state, entries });
  }

  dispose(): void {
    this.disposed = true;
    this.cancelRetry();
    this.stateListeners.clear();
    this.eventListeners.clear();
  }

  private async drain(): Promise<void> {
    for (;;) {
      if (this.disposed) return;
      // Storage is the source of truth: another tab may have sent an entry.
      const stored = this.read();
      if (stored !== null) this.setState({ ...this.state, entries: stored });
      const entry = this.state.entries[0];
      if (entry === undefined) {
        this.failures = 0;
        return;
      }

      const attempt: OutboxEntry<B> = { ...entry, attempts: entry.attempts + 1 };
      this.mutate((entries) => entries.map((e) => (e.key === entry.key ? attempt : e)));
      this.setState({ ...this.state, sendingKey: entry.key });

      let outcome: SendOutcome<R>;
      try {
        outcome = await this.sendEntry(attempt);
      } catch (error) {
        outcome = { kind: "retry", retryAfterMs: null, message: describe(error) };
      }
      this.setState({ ...this.state, sendingKey: null });
      if (this.disposed) return;

      if (outcome.kind === "retry") {
        this.failures += 1;
        this.mutate((entries) =>
          entries.map((e) => (e.key === entry.key ? { ...e, lastError: outcome.message } : e)),
        );
        this.scheduleRetry(retryDelay(this.failures - 1, outcome.retryAfterMs, this.policy, this.random));
        return;
      }

      this.failures = 0;
      this.mutate((entries) => entries.filter((e) => e.key !== entry.key));
      if (outcome.kind === "sent") {
        this.emit({ type: "sent", entry: attempt, result: outcome.result });
      } else {
        this.emit({ type: "rejected", entry: attempt, status: outcome.status, message: outcome.message });
      }
    }
  }

  private scheduleRetry(delayMs: number): void {
    this.cancelRetry();
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      this.setState({ ...this.state, retryAt: null });
      void this.flush();
    }, delayMs);
    this.setState({ ...this.state, retryAt: this.now() + delayMs });
  }

  private cancelRetry(): void {
    if (this.retryTimer !== null) {
      this.timers.clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    if (this.state.retryAt !== null) this.setState({ ...this.state, retryAt: null });
  }

  /** Applies a change to the stored list (read-modify-write, so other tabs' entries survive). */
  private mutate(change: (entries: readonly OutboxEntry<B>[]) => OutboxEntry<B>[]): void {
    const current = this.read() ?? this.state.entries;
    const next = change(current);
    this.write(next);
    this.setState({ ...this.state, entries: next });
  }

  /** The stored entries, or null when storage cannot be read. */
  private read(): OutboxEntry<B>[] | null {
    if (this.storage === null) return null;
    let raw: string | null;
    try {
      raw = this.storage.getItem(this.storageKey);
    } catch {
      return null;
    }
    if (raw === null) return [];
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== "object" || parsed === null) return [];
      const entries = (parsed as { entries?: unknown }).entries;
      return Array.isArray(entries) ? entries.filter(isEntry<B>) : [];
    } catch {
      return [];
    }
  }

  private write(entries: readonly OutboxEntry<B>[]): void {
    if (this.storage === null) return;
    try {
      this.storage.setItem(this.storageKey, JSON.stringify({ version: STORAGE_VERSION, entries }));
    } catch (error) {
      // Quota exceeded or storage disabled: the entry still lives in memory
      // and is sent from there; it just would not survive a reload.
      console.warn("Could not save the outbox", error);
    }
  }

  private setState(next: OutboxState<B>): void {
    this.state = next;
    for (const listener of [...this.stateListeners]) listener();
  }

  private emit(event: OutboxEvent<B, R>): void {
    for (const listener of [...this.eventListeners]) listener(event);
  }
}

function isEntry<B>(value: unknown): value is OutboxEntry<B> {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.key === "string" &&
    v.key.length > 0 &&
    typeof v.createdAt === "string" &&
    typeof v.attempts === "number" &&
    "body" in v
  );
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
