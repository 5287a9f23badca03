/**
 * Keeps the page's jobs current: Server-Sent Events when the stream works,
 * polling the list (conditional GET) when it does not, and back to the
 * stream as soon as it opens again.
 *
 * - The stream: one EventSource on /api/events. While it reconnects by
 *   itself (readyState CONNECTING) the browser sends Last-Event-ID and the
 *   server replays what was missed. If it gives up (CLOSED, e.g. a proxy
 *   answered 502), a new EventSource is opened after a backoff.
 * - Every opening of the stream, first or not, is followed by a list
 *   refresh requested after the opening. A resume cannot be relied on: an
 *   EventSource that has not yet received an event has no Last-Event-ID to
 *   send, so the server starts it from "now" and whatever changed while it
 *   was down is never replayed (the server restarted, the stream was cut).
 *   The stream's starting point is fixed when the server receives it, so a
 *   list read after the opening covers everything before it.
 * - The fallback: when the stream has errored `maxStreamErrors` times in a
 *   row, or is not open `fallbackAfterMs` after it started or failed,
 *   polling starts (every `pollIntervalMs`, backing off on failures). It
 *   stops when the stream opens.
 * - While the stream is open, a slow conditional refresh still runs
 *   (`safetyRefreshMs`): heartbeats are comments that EventSource never
 *   shows, so this is what notices a stream that went silent.
 *
 * Nothing here knows React or the DOM; the EventSource factory, the list
 * fetch and the timers are injected.
 */
import { retryDelay, type BackoffPolicy } from "../api/retry";
import type { Job } from "../api/types";
import { isJob } from "../api/types";
import { realTimers, type Timers } from "../timers";

/** The part of EventSource used here. */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: Event) => void): void;
  close(): void;
}

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSED = 2;

/** Result of one list refresh: whether it brought new data. */
export type RefreshResult = "changed" | "unchanged";

export type LiveMode = "connecting" | "stream" | "polling";

export interface LiveStatus {
  mode: LiveMode;
  streamOpen: boolean;
  lastEventId: string | null;
}

export interface LiveHandlers {
  onJob(job: Job): void;
  onDeleted(id: string): void;
  /** The server cannot replay what was missed: reload the list from scratch. */
  onReset(): void;
  /** Data is known to be current as of now (an event, a stream opening, a refresh). */
  onFresh?(): void;
  /** The stream proved the server reachable. */
  onReachable?(): void;
  onStatus?(status: LiveStatus): void;
}

export interface LiveOptions {
  url?: string;
  createEventSource: (url: string) => EventSourceLike;
  /** Refreshes the list (a conditional GET); rejects when the server could not be reached. */
  refresh: () => Promise<RefreshResult>;
  handlers: LiveHandlers;
  timers?: Timers;
  random?: () => number;
  pollIntervalMs?: number;
  fallbackAfterMs?: number;
  maxStreamErrors?: number;
  safetyRefreshMs?: number;
  /** Backoff of failed polls and of reopening a closed stream. */
  backoff?: BackoffPolicy;
}

const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, capMs: 30_000, maxRetryAfterMs: 30_000 };

export class LiveUpdates {
  private readonly url: string;
  private readonly options: LiveOptions;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly pollIntervalMs: number;
  private readonly fallbackAfterMs: number;
  private readonly maxStreamErrors: number;
  private readonly safetyRefreshMs: number;
  private readonly backoff: BackoffPolicy;

  private source: EventSourceLike | null = null;
  private streamErrors = 0;
  private reopenAttempts = 0;
  private pollFailures = 0;
  private status: LiveStatus = { mode: "connecting", streamOpen: false, lastEventId: null };
  private running = false;
  private refreshing: Promise<RefreshResult> | null = null;

  private fallbackTimer: unknown = null;
  private pollTimer: unknown = null;
  private reopenTimer: unknown = null;
  private safetyTimer: unknown = null;

  constructor(options: LiveOptions) {
    this.options = options;
    this.url = options.url ?? "/api/events";
    this.timers = options.timers ?? realTimers;
    this.random = options.random ?? Math.random;
    this.pollIntervalMs = options.pollIntervalMs ?? 4000;
    this.fallbackAfterMs = options.fallbackAfterMs ?? 5000;
    this.maxStreamErrors = options.maxStreamErrors ?? 3;
    this.safetyRefreshMs = options.safetyRefreshMs ?? 30_000;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
  }

  getStatus(): LiveStatus {
    return this.status;
  }

  /** The id of the last event received (what the next resume starts after). */
  get lastEventId(): string | null {
    return this.status.lastEventId;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.openStream();
  }

  stop(): void {
    this.running = false;
    this.source?.close();
    this.source = null;
    for (const timer of [this.fallbackTimer, this.pollTimer, this.reopenTimer, this.safetyTimer]) {
      if (timer !== null) this.timers.clearTimeout(timer);
    }
    this.fallbackTimer = this.pollTimer = this.reopenTimer = this.safetyTimer = null;
  }

  /**
   * Refreshes the list now; concurrent calls share one request, unless
   * `fresh` asks for one sent from now on (a request already in flight may
   * have been answered before what the caller needs to see). Failures are
   * the caller's to handle (the polling loop backs off on them).
   */
  refresh(fresh = false): Promise<RefreshResult> {
    if (!this.refreshing || fresh) {
      const request: Promise<RefreshResult> = this.options
        .refresh()
        .then((result) => {
          this.options.handlers.onFresh?.();
          return result;
        })
        .finally(() => {
          if (this.refreshing === request) this.refreshing = null;
        });
      this.refreshing = request;
    }
    return this.refreshing;
  }

  /**
   * A hint that the network may be back (the browser's `online` event, a
   * request that just succeeded): retry whatever is waiting, now.
   */
  nudge(): void {
    if (!this.running) return;
    if (this.reopenTimer !== null) {
      this.timers.clearTimeout(this.reopenTimer);
      this.reopenTimer = null;
      this.openStream();
    }
    if (this.status.mode === "polling") {
      this.pollFailures = 0;
      this.stopPolling();
      void this.pollOnce();
    }
  }

  private openStream(): void {
    if (!this.running) return;
    let source: EventSourceLike;
    try {
      source = this.options.createEventSource(this.url);
    } catch {
      this.enterPolling();
      this.scheduleReopen();
      return;
    }
    this.source = source;
    source.addEventListener("open", () => this.whenCurrent(source, () => this.onOpen()));
    source.addEventListener("error", () => this.whenCurrent(source, () => this.onError(source)));
    source.addEventListener("job", (event) => this.whenCurrent(source, () => this.onJobEvent(event)));
    source.addEventListener("job-deleted", (event) => this.whenCurrent(source, () => this.onDeletedEvent(event)));
    source.addEventListener("reset", (event) => this.whenCurrent(source, () => this.onResetEvent(event)));
    this.armFallback();
  }

  /** Events of a source that was replaced or closed are ignored. */
  private whenCurrent(source: EventSourceLike, action: () => void): void {
    if (this.running && this.source === source) action();
  }

  private onOpen(): void {
    this.streamErrors = 0;
    this.reopenAttempts = 0;
    this.clearFallback();
    this.stopPolling();
    this.setStatus({ mode: "stream", streamOpen: true });
    this.options.handlers.onReachable?.();
    this.options.handlers.onFresh?.();
    this.scheduleSafetyRefresh();
    // Reconcile: what changed before the stream's starting point (see above).
    this.refresh(true).catch(() => undefined);
  }

  private onError(source: EventSourceLike): void {
    this.streamErrors += 1;
    if (this.status.streamOpen) this.setStatus({ streamOpen: false });
    this.clearSafetyRefresh();
    if (source.readyState === CLOSED) {
      // The browser gave up on this instance; open another one later.
      source.close();
      this.source = null;
      this.scheduleReopen();
    }
    if (this.streamErrors >= this.maxStreamErrors) {
      this.enterPolling();
    } else if (this.status.mode !== "polling") {
      this.armFallback();
    }
  }

  private onJobEvent(event: Event): void {
    const data = parseData(event);
    this.trackEventId(event);
    if (isJob(data)) this.options.handlers.onJob(data);
    this.options.handlers.onFresh?.();
  }

  private onDeletedEvent(event: Event): void {
    const data = parseData(event);
    this.trackEventId(event);
    if (typeof data === "object" && data !== null && typeof (data as { id?: unknown }).id === "string") {
      this.options.handlers.onDeleted((data as { id: string }).id);
    }
    this.options.handlers.onFresh?.();
  }

  private onResetEvent(event: Event): void {
    this.trackEventId(event);
    this.options.handlers.onReset();
  }

  private trackEventId(event: Event): void {
    const id = (event as MessageEvent).lastEventId;
    if (typeof id === "string" && id !== "") this.setStatus({ lastEventId: id });
  }

  private armFallback(): void {
    if (this.fallbackTimer !== null || this.status.mode === "polling") return;
    this.fallbackTimer = this.timers.setTimeout(() => {
      this.fallbackTimer = null;
      if (!this.status.streamOpen) this.enterPolling();
    }, this.fallbackAfterMs);
  }

  private clearFallback(): void {
    if (this.fallbackTimer !== null) {
      this.timers.clearTimeout(this.fallbackTimer);
      this.fallbackTimer = null;
    }
  }

  private scheduleReopen(): void {
    if (!this.running || this.reopenTimer !== null) return;
    const delay = retryDelay(this.reopenAttempts, null, this.backoff, this.random);
    this.reopenAttempts += 1;
    this.reopenTimer = this.timers.setTimeout(() => {
      this.reopenTimer = null;
      this.openStream();
    }, Math.max(delay, this.backoff.baseMs));
  }

  private enterPolling(): void {
    if (!this.running || this.status.mode === "polling") return;
    this.clearFallback();
    this.setStatus({ mode: "polling" });
    this.pollFailures = 0;
    void this.pollOnce();
  }

  private stopPolling(): void {
    if (this.pollTimer !== null) {
      this.timers.clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }
  }

  private schedulePoll(delayMs: number): void {
    this.stopPolling();
    this.pollTimer = this.timers.setTimeout(() => {
      this.pollTimer = null;
      void this.pollOnce();
    }, delayMs);
  }

  private async pollOnce(): Promise<void> {
    if (!this.running || this.status.mode !== "polling") return;
    let delay: number;
    try {
      await this.refresh();
      this.pollFailures = 0;
      delay = this.pollIntervalMs;
    } catch {
      delay = Math.max(this.pollIntervalMs, retryDelay(this.pollFailures, null, this.backoff, this.random));
      this.pollFailures += 1;
    }
    // The stream may have come back while the request was in flight.
    if (this.running && this.status.mode === "polling" && this.pollTimer === null) this.schedulePoll(delay);
  }

  private scheduleSafetyRefresh(): void {
    this.clearSafetyRefresh();
    this.safetyTimer = this.timers.setTimeout(() => {
      this.safetyTimer = null;
      if (!this.running || !this.status.streamOpen) return;
      this.refresh().then(
        () => {
          if (this.status.streamOpen) this.scheduleSafetyRefresh();
        },
        () => this.abandonSilentStream(),
      );
    }, this.safetyRefreshMs);
  }

  /**
   * The stream says it is open but the server cannot be reached: the
   * connection died without the browser noticing. Replace it, and poll
   * meanwhile.
   */
  private abandonSilentStream(): void {
    if (!this.running || !this.status.streamOpen) return;
    this.source?.close();
    this.source = null;
    this.setStatus({ streamOpen: false });
    this.enterPolling();
    this.scheduleReopen();
  }

  private clearSafetyRefresh(): void {
    if (this.safetyTimer !== null) {
      this.timers.clearTimeout(this.safetyTimer);
      this.safetyTimer = null;
    }
  }

  private setStatus(change: Partial<LiveStatus>): void {
    this.status = { ...this.status, ...change };
    this.options.handlers.onStatus?.(this.status);
  }
}

function parseData(event: Event): unknown {
  const data = (event as MessageEvent).data;
  if (typeof data !== "string") return null;
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return null;
  }
}
