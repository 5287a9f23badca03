/**
 * The event stream and the mode the list follows: `stream` while it is
 * open, `polling` once it has not been open for 5 s or failed three times
 * in a row, `connecting` in between. An EventSource the browser gave up on
 * (CLOSED) is replaced after a backoff. Every opening, first or not, calls
 * `onOpen` to refetch the list: a reconnect cannot always resume (with no
 * event received there is no Last-Event-ID, and the server starts from
 * "now"), but a list read after the opening covers what came before it.
 */
import { retryDelay } from "../api/http";
import { isJob, type Job } from "../api/types";

/** The part of EventSource used here. */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: Event) => void): void;
  close(): void;
}

export const CLOSED = 2;
const FALLBACK_AFTER_MS = 5000;
const MAX_ERRORS = 3;

export type LiveMode = "connecting" | "stream" | "polling";

export interface LiveHandlers {
  createEventSource: (url: string) => EventSourceLike;
  onJob: (job: Job) => void;
  onDeleted: (id: string) => void;
  onReset: () => void; // the server cannot replay what was missed
  onOpen: () => void; // first time or again: reconcile
}

export class LiveUpdates {
  private source: EventSourceLike | null = null;
  private mode: LiveMode = "connecting";
  private errors = 0;
  private reopens = 0;
  private fallbackTimer?: ReturnType<typeof setTimeout>;
  private reopenTimer?: ReturnType<typeof setTimeout>;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly handlers: LiveHandlers) {}

  getMode = (): LiveMode => this.mode;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  start(): void {
    this.open();
    this.setMode("connecting"); // arms the fallback to polling
  }

  stop(): void {
    this.close();
    clearTimeout(this.fallbackTimer);
    clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
  }

  /** The server may be back (a request succeeded, the browser's `online`): reopen now if waiting to. */
  nudge(): void {
    if (this.reopenTimer === undefined) return;
    clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    this.open();
  }

  /**
   * The stream looks open but the server cannot be reached: the connection
   * died unnoticed (heartbeats are comments, which EventSource never shows).
   * Replace it, polling meanwhile.
   */
  abandon(): void {
    if (this.mode !== "stream") return;
    this.close();
    this.setMode("polling");
    this.reopenLater();
  }

  private open(): void {
    const source = (this.source = this.handlers.createEventSource("/api/events"));
    const on = (type: string, handle: (data: unknown) => void) =>
      source.addEventListener(type, (event) => {
        if (this.source === source) handle(parse(event as MessageEvent));
      });
    on("open", () => {
      this.errors = this.reopens = 0;
      this.setMode("stream");
      this.handlers.onOpen();
    });
    on("error", () => {
      this.errors += 1;
      if (source.readyState === CLOSED) {
        this.close();
        this.reopenLater();
      }
      this.setMode(this.errors >= MAX_ERRORS || this.mode === "polling" ? "polling" : "connecting");
    });
    on("job", (job) => isJob(job) && this.handlers.onJob(job));
    on("job-deleted", (data) => {
      const id = (data as { id?: unknown } | null)?.id;
      if (typeof id === "string") this.handlers.onDeleted(id);
    });
    on("reset", () => this.handlers.onReset());
  }

  private close(): void {
    this.source?.close();
    this.source = null;
  }

  private reopenLater(): void {
    if (this.reopenTimer !== undefined) return;
    this.reopenTimer = setTimeout(
      () => {
        this.reopenTimer = undefined;
        this.open();
      },
      Math.max(1000, retryDelay(this.reopens++, null)),
    );
  }

  private setMode(mode: LiveMode): void {
    clearTimeout(this.fallbackTimer);
    if (mode === "connecting") {
      this.fallbackTimer = setTimeout(() => this.setMode("polling"), FALLBACK_AFTER_MS);
    }
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
