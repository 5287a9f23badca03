/**
 * The page's parts wired together (no React): the query client and its
 * policy, the jobs cache, the event stream, the outbox, reachability and
 * the server clock. Tests build it with a fake fetch and EventSource.
 */
import { QueryClient } from "@tanstack/react-query";
import { Http, isRetryable, retryDelay } from "../api/http";
import type { AppConfig, Stats } from "../api/types";
import { connectionState, reportAnswer, subscribeReachability } from "../connectivity/reachability";
import { JobsCache, jobKeys, type JobChange } from "../jobs/jobsCache";
import { ServerClock } from "../jobs/serverClock";
import { LiveUpdates, type EventSourceLike } from "../live/liveUpdates";
import { persistCreates, registerCreates } from "../outbox/outbox";
import { Announcer } from "./announcer";
import { STATUS_LABELS, shortId } from "../jobs/format";

export interface ServiceDeps {
  fetch?: typeof fetch;
  createEventSource?: (url: string) => EventSourceLike;
  storage?: Storage | null;
}

export const statsKey = ["stats"] as const;
export const configKey = ["config"] as const;
// Counts are refreshed this long after a change, so a burst costs one request.
const STATS_AFTER_CHANGE_MS = 800;

export class Services {
  readonly client: QueryClient;
  readonly http: Http;
  readonly cache: JobsCache;
  readonly live: LiveUpdates;
  readonly clock = new ServerClock();
  readonly announcer = new Announcer();
  /** When an event last arrived (epoch ms): the data was current then. */
  lastEventAt: number | null = null;
  private statsTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly deps: ServiceDeps = {}) {
    this.http = new Http({
      fetch: deps.fetch,
      hooks: { onAnswer: reportAnswer, onServerDate: (server, local) => this.clock.sample(server, local) },
    });
    this.client = new QueryClient({
      defaultOptions: {
        // Queries always try (their answers are how reachability is known);
        // creates pause while the server is unreachable.
        queries: { networkMode: "always", retry: (_n, error) => isRetryable(error), retryDelay },
      },
    });
    this.client.setQueryDefaults(jobKeys.ones, { gcTime: Infinity });
    this.client.setQueryDefaults(statsKey, { queryFn: ({ signal }) => this.getJson<Stats>("/api/stats", signal) });
    this.client.setQueryDefaults(configKey, {
      queryFn: ({ signal }) => this.getJson<AppConfig>("/api/config", signal),
      staleTime: Infinity,
    });
    this.cache = new JobsCache(this.client, this.http, (changes, quiet) => this.onChanges(changes, quiet));
    registerCreates(this.client, this.http, (job) => {
      this.cache.applyJob(job);
      this.announcer.say(`Job ${shortId(job.id)} created.`);
    });
    this.live = new LiveUpdates({
      createEventSource: deps.createEventSource ?? ((url) => new EventSource(url)),
      onJob: (job) => this.cache.applyJob(job),
      onDeleted: (id) => this.cache.applyDeleted(id),
      onReset: () => void this.cache.reset(),
      onOpen: () => {
        reportAnswer(true);
        // A refetch sent now, not one already on its way (refetchQueries cancels those).
        void this.client.refetchQueries({ queryKey: jobKeys.lists, type: "active" });
        this.refreshStatsSoon();
      },
      onEvent: () => (this.lastEventAt = Date.now()),
    });
  }

  /** Starts the stream and restores the outbox; resolves once unsent creates are resumed. */
  start(): Promise<void> {
    // Follows onlineManager and focusManager: paused creates resume and
    // lists refetch when the server answers again or the page regains focus.
    this.client.mount();
    this.live.start();
    let was = connectionState();
    let connectedBefore = was === "online";
    this.cleanups.push(
      subscribeReachability(() => {
        const now = connectionState();
        if (now === was) return;
        was = now;
        if (now === "online") this.live.nudge();
        else this.live.abandon();
        if (connectedBefore) {
          this.announcer.say(now === "online" ? "Connection restored." : "Connection lost. New jobs are kept and sent when it is back.");
        }
        connectedBefore ||= now === "online";
      }),
    );
    const storage = this.deps.storage === undefined ? safeLocalStorage() : this.deps.storage;
    return persistCreates(this.client, storage);
  }

  stop(): void {
    this.live.stop();
    clearTimeout(this.statsTimer);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    this.client.unmount();
    this.client.clear();
  }

  private async getJson<T>(path: string, signal: AbortSignal): Promise<T> {
    const { data } = await this.http.get<T>(path, null, signal);
    if (data === null) throw new Error(`Unexpected 304 from ${path}`);
    return data;
  }

  private onChanges(changes: readonly JobChange[], quiet: boolean): void {
    this.refreshStatsSoon();
    if (quiet) return;
    for (const { job, previous } of changes) {
      if (previous && previous.status !== job.status) {
        this.announcer.say(`Job ${shortId(job.id)} is now ${STATUS_LABELS[job.status].toLowerCase()}.`);
      }
    }
  }

  private refreshStatsSoon(): void {
    if (this.statsTimer !== undefined) return;
    this.statsTimer = setTimeout(() => {
      this.statsTimer = undefined;
      void this.client.invalidateQueries({ queryKey: statsKey });
    }, STATS_AFTER_CHANGE_MS);
  }
}

function safeLocalStorage(): Storage | null {
  try {
    const storage = globalThis.localStorage;
    storage.setItem("jobs.probe", "1");
    storage.removeItem("jobs.probe");
    return storage;
  } catch {
    return null;
  }
}
