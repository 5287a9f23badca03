/**
 * The event stream (`/api/events`) and the mode the page's list follows:
 * `stream` while it is open, `polling` when it is not (the list query then
 * refetches every few seconds), `connecting` in between.
 *
 * - While the browser reconnects an EventSource by itself (CONNECTING) it
 *   sends Last-Event-ID. If it gives up (CLOSED, e.g. a proxy answered
 *   502), a new one is opened after a backoff.
 * - Every opening, first or not, calls `onOpen`, which reconciles with a
 *   list refetch sent after it. A reconnect cannot always resume: an
 *   EventSource that has received no event has no Last-Event-ID, and the
 *   server then starts it from "now", so a change made while it was down
 *   would never arrive. The server fixes a stream's starting point when it
 *   receives it, so the stream plus a list read after the opening cover
 *   everything.
 * - After `maxErrors` errors in a row, or when it is not open
 *   `fallbackAfterMs` after starting or failing, the mode is `polling`
 *   until it opens.
 */
import { retryDelay } from "../api/http";
import { isJob, type Job } from "../api/types";

/** The part of EventSource used here. */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: Event) => void): void;
  close(): void;
}

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSED = 2;

export type LiveMode = "connecting" | "stream" | "polling";

export interface LiveOptions {
  createEventSource: (url: string) => EventSourceLike;
  onJob: (job: Job) => void;
  onDeleted: (id: string) => void;
  /** The server cannot replay what was missed. */
  onReset: () => void;
  /** The stream opened (first time or again): reconcile with the server. */
  onOpen: () => void;
  /** An event arrived: the data is current as of now. */
  onEvent?: () => void;
  fallbackAfterMs?: number;
  maxErrors?: number;
}

export class LiveUpdates {
  private source: EventSourceLike | null = null;
  private mode: LiveMode = "connecting";
  private errors = 0;
  private reopenAttempts = 0;
  private fallbackTimer: ReturnType<typeof setTimeout> | undefined;
  private reopenTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly options: LiveOptions) {}

  getMode = (): LiveMode => this.mode;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  start(): void {
    if (!this.source && this.reopenTimer === undefined) this.open();
  }

  stop(): void {
    this.source?.close();
    this.source = null;
    clearTimeout(this.fallbackTimer);
    clearTimeout(this.reopenTimer);
    this.fallbackTimer = this.reopenTimer = undefined;
  }

  /** The network may be back (a request succeeded, the browser's `online`): reopen now if waiting to. */
  nudge(): void {
    if (this.reopenTimer === undefined) return;
    clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    this.open();
  }

  /**
   * The stream says it is open but the server cannot be reached: the
   * connection died without the browser noticing (heartbeats are comments,
   * which EventSource never shows). Replace it, polling meanwhile.
   */
  abandon(): void {
    if (this.mode !== "stream") return;
    this.source?.close();
    this.source = null;
    this.setMode("polling");
    this.scheduleReopen();
  }

  private open(): void {
    const source = this.options.createEventSource("/api/events");
    this.source = source;
    const on = (type: string, handle: (event: MessageEvent) => void) =>
      source.addEventListener(type, (event) => {
        if (this.source === source) handle(event as MessageEvent);
      });
    on("open", () => {
      this.errors = this.reopenAttempts = 0;
      clearTimeout(this.fallbackTimer);
      this.setMode("stream");
      this.options.onOpen();
    });
    on("error", () => this.onError(source));
    on("job", (event) => {
      const job = parse(event);
      if (isJob(job)) this.options.onJob(job);
      this.options.onEvent?.();
    });
    on("job-deleted", (event) => {
      const data = parse(event) as { id?: unknown } | null;
      if (typeof data?.id === "string") this.options.onDeleted(data.id);
      this.options.onEvent?.();
    });
    on("reset", () => this.options.onReset());
    this.armFallback();
  }

  private onError(source: EventSourceLike): void {
    this.errors += 1;
    if (source.readyState === CLOSED) {
      // The browser gave up on this one; open another later.
      source.close();
      this.source = null;
      this.scheduleReopen();
    }
    if (this.errors >= (this.options.maxErrors ?? 3)) this.setMode("polling");
    else if (this.mode === "stream") this.setMode("connecting");
    this.armFallback();
  }

  private armFallback(): void {
    clearTimeout(this.fallbackTimer);
    if (this.mode === "polling") return;
    this.fallbackTimer = setTimeout(() => {
      if (this.mode !== "stream") this.setMode("polling");
    }, this.options.fallbackAfterMs ?? 5000);
  }

  private scheduleReopen(): void {
    if (this.reopenTimer !== undefined) return;
    const delay = Math.max(1000, retryDelay(this.reopenAttempts, null));
    this.reopenAttempts += 1;
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = undefined;
      this.open();
    }, delay);
  }

  private setMode(mode: LiveMode): void {
    if (mode === this.mode) return;
    this.mode = mode;
    for (const listener of [...this.listeners]) listener();
  }
}

function parse(event: MessageEvent): unknown {
  try {
    return typeof event.data === "string" ? (JSON.parse(event.data) as unknown) : null;
  } catch {
    return null;
  }
}
