/**
 * The page's state and the wiring between its parts: the API client, the
 * job store, live updates, the outbox and the connection indicator.
 * React components read `getView()` and call the actions; nothing here
 * renders.
 */
import { ApiClient, ApiError } from "../api/client";
import type { AppConfig, CreateJobBody, Job, JobStatus, Stats } from "../api/types";
import { JOB_STATUSES } from "../api/types";
import { Connectivity, type ConnectionState } from "../connectivity/connectivity";
import { STATUS_LABELS, shortId } from "../jobs/format";
import { JobStore, type JobChange } from "../jobs/jobStore";
import { ServerClock } from "../jobs/serverClock";
import { LiveUpdates, type EventSourceLike, type LiveStatus, type RefreshResult } from "../live/liveUpdates";
import { Outbox, type KeyValueStorage, type OutboxEvent } from "../outbox/outbox";
import { realTimers, type Timers } from "../timers";

export const PAGE_SIZE = 50;

/** A create the server has not confirmed: shown at once, in its own row. */
export interface PendingCreate {
  key: string;
  body: CreateJobBody;
  createdAt: string;
  /** sending: in flight; queued: waiting to be (re)sent; rejected: the server refused it. */
  state: "sending" | "queued" | "rejected";
  message: string | null;
}

export interface Notice {
  id: number;
  text: string;
}

export interface View {
  config: AppConfig | null;
  stats: Stats | null;
  statuses: readonly JobStatus[];
  jobs: readonly Job[];
  pendingCreates: readonly PendingCreate[];
  outboxCount: number;
  listState: "loading" | "ready" | "error";
  listError: string | null;
  hasMore: boolean;
  loadingMore: boolean;
  loadMoreError: string | null;
  connection: ConnectionState;
  everConnected: boolean;
  live: LiveStatus;
  /** When the data shown was last known to be current (epoch ms). */
  lastUpdatedAt: number | null;
  announcement: Notice | null;
  notices: readonly Notice[];
}

export interface ControllerDeps {
  client?: ApiClient;
  storage?: KeyValueStorage | null;
  createEventSource?: (url: string) => EventSourceLike;
  timers?: Timers;
  now?: () => number;
  /** window, for online/offline/storage events (omitted in tests). */
  window?: Pick<Window, "addEventListener" | "removeEventListener">;
}

interface ListQueryState {
  statuses: readonly JobStatus[];
  /** Bumped on every new query, so late answers to an old one are dropped. */
  generation: number;
  etag: string | null;
  loaded: boolean;
  next: string | null;
  /** Oldest id loaded through pagination; older jobs are not shown until loaded. */
  boundaryId: string | null;
}

export class Controller {
  readonly clock: ServerClock;
  readonly connectivity: Connectivity;
  private readonly client: ApiClient;
  private readonly store = new JobStore();
  private readonly outbox: Outbox<CreateJobBody, Job>;
  private readonly live: LiveUpdates;
  private readonly timers: Timers;
  private readonly now: () => number;
  private readonly win: ControllerDeps["window"];

  private query: ListQueryState = { statuses: [], generation: 0, etag: null, loaded: false, next: null, boundaryId: null };
  private view: View;
  private readonly listeners = new Set<() => void>();
  private rejected: PendingCreate[] = [];
  private notices: Notice[] = [];
  private nextNoticeId = 1;
  private pendingAnnouncements: string[] = [];
  private announceTimer: unknown = null;
  private statsTimer: unknown = null;
  private statsInFlight = false;
  private statsAgain = false;
  private configLoading = false;
  private cleanups: (() => void)[] = [];
  private started = false;

  constructor(deps: ControllerDeps = {}) {
    this.timers = deps.timers ?? realTimers;
    this.now = deps.now ?? Date.now;
    this.win = deps.window;
    this.clock = new ServerClock(this.now);
    this.connectivity = new Connectivity(this.now);
    this.client =
      deps.client ??
      new ApiClient({
        onReachability: (reachable) => this.connectivity.report(reachable),
        onServerDate: (serverMs, localMs) => this.clock.sample(serverMs, localMs),
      });
    this.outbox = new Outbox<CreateJobBody, Job>({
      storage: deps.storage === undefined ? safeLocalStorage() : deps.storage,
      send: (entry) => this.client.createJobAttempt(entry.body, entry.key),
      timers: this.timers,
      now: this.now,
    });
    const createEventSource =
      deps.createEventSource ?? ((url: string) => new EventSource(url) as unknown as EventSourceLike);
    this.live = new LiveUpdates({
      createEventSource,
      refresh: () => this.refreshFirstPage(),
      timers: this.timers,
      handlers: {
        onJob: (job) => this.applyChanges(nonNull([this.store.upsert(job)])),
        onDeleted: (id) => {
          if (this.store.remove(id)) this.scheduleStats();
        },
        onReset: () => void this.reload(),
        onFresh: () => this.setView({ lastUpdatedAt: this.now() }),
        onReachable: () => this.connectivity.report(true),
        onStatus: (live) => this.setView({ live }),
      },
    });

    this.view = {
      config: null,
      stats: null,
      statuses: [],
      jobs: [],
      pendingCreates: [],
      outboxCount: 0,
      listState: "loading",
      listError: null,
      hasMore: false,
      loadingMore: false,
      loadMoreError: null,
      connection: "offline",
      everConnected: false,
      live: this.live.getStatus(),
      lastUpdatedAt: null,
      announcement: null,
      notices: [],
    };
    this.view = { ...this.view, ...this.outboxView() };
  }

  getView = (): View => this.view;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  start(): void {
    if (this.started) return;
    this.started = true;
    this.cleanups.push(
      this.store.subscribe(() => this.setView({ jobs: this.visibleJobs() })),
      this.outbox.subscribe(() => this.setView(this.outboxView())),
      this.outbox.onEvent((event) => this.onOutboxEvent(event)),
      this.connectivity.subscribe((next, previous) => {
        this.setView({ connection: next.state, everConnected: next.everConnected, pendingCreates: this.pendingCreates() });
        if (next.state === "online" && previous.state === "offline") {
          if (previous.everConnected) this.announce("Connection restored.");
          this.onReconnected();
        } else if (next.state === "offline" && previous.everConnected) {
          this.announce("Connection lost. New jobs are kept and sent when it is back.");
        }
      }),
    );
    const win = this.win;
    if (win) {
      const onOnline = () => {
        this.outbox.wake();
        this.live.nudge();
        this.scheduleStats(0);
      };
      const onOffline = () => this.connectivity.report(false);
      const onStorage = (event: Event) => {
        if ((event as StorageEvent).key === null || (event as StorageEvent).key?.startsWith("jobs.outbox")) {
          this.outbox.reloadFromStorage();
        }
      };
      win.addEventListener("online", onOnline);
      win.addEventListener("offline", onOffline);
      win.addEventListener("storage", onStorage);
      this.cleanups.push(() => {
        win.removeEventListener("online", onOnline);
        win.removeEventListener("offline", onOffline);
        win.removeEventListener("storage", onStorage);
      });
    }
    void this.loadConfig();
    this.loadFirstPage();
    this.scheduleStats(0);
    this.live.start();
    void this.outbox.flush();
  }

  stop(): void {
    this.started = false;
    this.live.stop();
    this.outbox.dispose();
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    for (const timer of [this.announceTimer, this.statsTimer]) if (timer !== null) this.timers.clearTimeout(timer);
  }

  // ---- actions -----------------------------------------------------------

  /** Creates a job (kept in the outbox until the server has it). */
  createJob(delaySeconds: number | null): void {
    const body: CreateJobBody = delaySeconds === null ? {} : { delay_seconds: delaySeconds };
    this.outbox.add(body);
  }

  setFilter(statuses: readonly JobStatus[]): void {
    const ordered = JOB_STATUSES.filter((s) => statuses.includes(s));
    if (sameList(ordered, this.query.statuses)) return;
    this.query = {
      statuses: ordered,
      generation: this.query.generation + 1,
      etag: null,
      loaded: false,
      next: null,
      boundaryId: null,
    };
    this.setView({ statuses: ordered, loadMoreError: null, loadingMore: false });
    this.setView({ jobs: this.visibleJobs(), pendingCreates: this.pendingCreates(), hasMore: false });
    this.loadFirstPage();
  }

  async loadMore(): Promise<void> {
    const query = this.query;
    if (!query.next || this.view.loadingMore) return;
    this.setView({ loadingMore: true, loadMoreError: null });
    try {
      const response = await this.client.listJobs({ next: query.next });
      if (query.generation !== this.query.generation || response.notModified) return;
      const page = response.data;
      this.store.upsertMany(page.results);
      const oldest = oldestId(page.results);
      this.query = {
        ...this.query,
        next: page.next,
        boundaryId: oldest !== null && (this.query.boundaryId === null || oldest < this.query.boundaryId) ? oldest : this.query.boundaryId,
      };
      this.setView({ jobs: this.visibleJobs(), hasMore: page.next !== null });
    } catch (error) {
      if (query.generation === this.query.generation) this.setView({ loadMoreError: errorMessage(error) });
    } finally {
      if (query.generation === this.query.generation) this.setView({ loadingMore: false });
    }
  }

  /** Try the list again after it failed to load. */
  retryList(): void {
    this.loadFirstPage();
    this.live.nudge();
    this.outbox.wake();
  }

  dismissRejected(key: string): void {
    this.rejected = this.rejected.filter((r) => r.key !== key);
    this.setView({ pendingCreates: this.pendingCreates() });
  }

  dismissNotice(id: number): void {
    this.notices = this.notices.filter((n) => n.id !== id);
    this.setView({ notices: this.notices });
  }

  // ---- list loading --------------------------------------------------------

  private loadFirstPage(): void {
    if (!this.query.loaded) this.setView({ listState: "loading", listError: null });
    this.live.refresh().catch((error: unknown) => {
      if (!this.query.loaded) this.setView({ listState: "error", listError: errorMessage(error) });
    });
  }

  /**
   * Fetches the first page of the current query with If-None-Match and
   * merges it. Used for the first load, polling and catching up.
   */
  private async refreshFirstPage(): Promise<RefreshResult> {
    const query = this.query;
    const knownBefore = this.store.ids();
    const response = await this.client.listJobs(
      { statuses: query.statuses, limit: PAGE_SIZE },
      query.loaded ? query.etag : null,
      { maxAttempts: 3 },
    );
    // The filter changed while this was in flight: fetch for the new one instead.
    if (query.generation !== this.query.generation) return this.refreshFirstPage();
    if (response.notModified) {
      this.query = { ...this.query, etag: response.etag };
      return "unchanged";
    }
    const page = response.data;
    const coversFrom = page.next === null ? null : oldestId(page.results);
    const changes = this.store.applySnapshot(page.results, { knownBefore, statuses: query.statuses, coversFrom });
    if (!this.query.loaded) {
      this.query = { ...this.query, loaded: true, next: page.next, boundaryId: coversFrom };
    }
    this.query = { ...this.query, etag: response.etag };
    this.setView({ listState: "ready", listError: null, jobs: this.visibleJobs(), hasMore: this.query.next !== null });
    this.applyChanges(changes, { quiet: !query.loaded });
    if (query.loaded) this.scheduleStats();
    return "changed";
  }

  /** The server could not replay missed events: start the list over. */
  private async reload(): Promise<void> {
    const generation = this.query.generation + 1;
    this.query = { ...this.query, generation, etag: null, loaded: false, next: null, boundaryId: null };
    const knownBefore = this.store.ids();
    try {
      const response = await this.client.listJobs({ statuses: this.query.statuses, limit: PAGE_SIZE });
      if (generation !== this.query.generation || response.notModified) return;
      const page = response.data;
      // Every job known before is dropped unless listed again, but a copy
      // newer than the listed one (an event that arrived while the list was
      // on its way) is kept: the list must not take a job back in time.
      this.store.applySnapshot(page.results, { knownBefore, statuses: [], coversFrom: null });
      this.query = {
        ...this.query,
        loaded: true,
        etag: response.etag,
        next: page.next,
        boundaryId: page.next === null ? null : oldestId(page.results),
      };
      this.setView({ listState: "ready", listError: null, jobs: this.visibleJobs(), hasMore: page.next !== null, lastUpdatedAt: this.now() });
    } catch (error) {
      if (generation === this.query.generation) this.setView({ listState: "error", listError: errorMessage(error) });
    }
    this.scheduleStats();
  }

  private visibleJobs(): readonly Job[] {
    const { statuses, boundaryId, next, loaded } = this.query;
    return this.store.all().filter((job) => {
      if (statuses.length > 0 && !statuses.includes(job.status)) return false;
      if (loaded && next !== null && boundaryId !== null && job.id < boundaryId) return false;
      return true;
    });
  }

  // ---- config, stats ---------------------------------------------------------

  private async loadConfig(): Promise<void> {
    if (this.configLoading || this.view.config) return;
    this.configLoading = true;
    try {
      const config = await this.client.getConfig();
      this.setView({ config });
    } catch {
      // The page works with the default delay range; retried on reconnect.
    } finally {
      this.configLoading = false;
    }
  }

  /** Refreshes the counts soon; many changes in a burst make one request. */
  private scheduleStats(delayMs = 800): void {
    if (this.statsInFlight) {
      this.statsAgain = true;
      return;
    }
    if (this.statsTimer !== null) return;
    this.statsTimer = this.timers.setTimeout(() => {
      this.statsTimer = null;
      void this.loadStats();
    }, delayMs);
  }

  private async loadStats(): Promise<void> {
    this.statsInFlight = true;
    try {
      const stats = await this.client.getStats({ maxAttempts: 3 });
      this.setView({ stats });
    } catch {
      // Counts stay as they were; the next change or reconnect asks again.
    } finally {
      this.statsInFlight = false;
      if (this.statsAgain) {
        this.statsAgain = false;
        this.scheduleStats();
      }
    }
  }

  private onReconnected(): void {
    this.outbox.wake();
    this.live.nudge();
    void this.loadConfig();
    if (this.view.listState === "error") this.loadFirstPage();
    this.scheduleStats(0);
  }

  // ---- outbox ---------------------------------------------------------------

  private onOutboxEvent(event: OutboxEvent<CreateJobBody, Job>): void {
    if (event.type === "sent") {
      const change = this.store.upsert(event.result);
      if (change) this.applyChanges([change], { quiet: true });
      this.announce(`Job ${shortId(event.result.id)} created.`);
      this.scheduleStats(0);
    } else {
      const text = `A new job could not be created: ${event.message}`;
      this.rejected = [
        ...this.rejected,
        { key: event.entry.key, body: event.entry.body, createdAt: event.entry.createdAt, state: "rejected", message: event.message },
      ];
      this.notices = [...this.notices, { id: this.nextNoticeId++, text }];
      this.setView({ pendingCreates: this.pendingCreates(), notices: this.notices });
      this.announce(text);
    }
  }

  private outboxView(): Pick<View, "pendingCreates" | "outboxCount"> {
    return { pendingCreates: this.pendingCreates(), outboxCount: this.outbox.getState().entries.length };
  }

  private pendingCreates(): PendingCreate[] {
    const statuses = this.query.statuses;
    if (statuses.length > 0 && !statuses.includes("pending")) return this.rejected;
    const { entries, sendingKey, retryAt } = this.outbox.getState();
    const online = this.connectivity.getSnapshot().state === "online";
    const waiting: PendingCreate[] = entries.map((entry) => {
      // "sending" while it goes (or is about to go) to a server that answers; "queued" while it waits.
      const goingOut = entry.key === sendingKey || (entry.attempts === 0 && retryAt === null);
      return {
        key: entry.key,
        body: entry.body,
        createdAt: entry.createdAt,
        state: goingOut && online ? "sending" : "queued",
        message: entry.lastError,
      };
    });
    // Newest first, like the list below them.
    return [...this.rejected, ...waiting].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  }

  // ---- announcements ---------------------------------------------------------

  private applyChanges(changes: readonly JobChange[], options: { quiet?: boolean } = {}): void {
    if (changes.length === 0) return;
    this.scheduleStats();
    if (options.quiet) return;
    for (const { job, previous } of changes) {
      if (previous && previous.status !== job.status) {
        this.announce(`Job ${shortId(job.id)} is now ${STATUS_LABELS[job.status].toLowerCase()}.`);
      }
    }
  }

  /**
   * Queues a message for the aria-live region. Messages within a second
   * are read together, so a burst of changes is one announcement.
   */
  private announce(text: string): void {
    this.pendingAnnouncements.push(text);
    if (this.announceTimer !== null) return;
    this.announceTimer = this.timers.setTimeout(() => {
      this.announceTimer = null;
      const messages = this.pendingAnnouncements.splice(0);
      const text = messages.length <= 3 ? messages.join(" ") : `${messages.length} jobs changed. ${messages.slice(-2).join(" ")}`;
      this.setView({ announcement: { id: this.nextNoticeId++, text } });
    }, 1000);
  }

  private setView(change: Partial<View>): void {
    this.view = { ...this.view, ...change };
    for (const listener of [...this.listeners]) listener();
  }
}

function nonNull<T>(items: (T | null)[]): T[] {
  return items.filter((item): item is T => item !== null);
}

function oldestId(jobs: readonly { id?: unknown }[]): string | null {
  let oldest: string | null = null;
  for (const job of jobs) {
    if (typeof job.id === "string" && (oldest === null || job.id < oldest)) oldest = job.id;
  }
  return oldest;
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error && error.name === "NetworkError") return "Cannot reach the server. Retrying when it is back.";
  if (error instanceof Error) return error.message;
  return "Something went wrong.";
}

function safeLocalStorage(): KeyValueStorage | null {
  try {
    const storage = globalThis.localStorage;
    const probe = "jobs.outbox.probe";
    storage.setItem(probe, "1");
    storage.removeItem(probe);
    return storage;
  } catch {
    return null;
  }
}
