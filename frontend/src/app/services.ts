/**
 * The page's parts wired together, without React (tests build it with a
 * fake fetch and EventSource). Reachability is what actually happened: an
 * answer from the app or an opened stream says yes, a failed request no.
 * It drives `onlineManager`, so creates pause while the server cannot be
 * reached and resume the moment anything gets through.
 */
import { onlineManager, QueryClient } from "@tanstack/react-query";
import { Http, isRetryable, retryDelay } from "../api/http";
import type { AppConfig, Stats } from "../api/types";
import { JobsCache, jobKeys } from "../jobs/jobsCache";
import { ServerClock } from "../jobs/serverClock";
import { LiveUpdates, type EventSourceLike } from "../live/liveUpdates";
import { persistCreates, registerCreates } from "../outbox/outbox";
import { Announcer } from "./announcer";

type ServiceDeps = { fetch?: typeof fetch; createEventSource?: (url: string) => EventSourceLike; storage?: Storage | null };

export const statsKey = ["stats"] as const;
export const configKey = ["config"] as const;

export class Services {
  readonly clock = new ServerClock();
  readonly announcer = new Announcer();
  // Queries always try (their answers are how reachability is known); creates pause while it is lost.
  readonly client = new QueryClient({
    defaultOptions: { queries: { networkMode: "always", retry: (_n, error) => isRetryable(error), retryDelay } },
  });
  readonly http: Http;
  readonly cache: JobsCache;
  readonly live: LiveUpdates;
  private readonly storage: Storage | null;
  private statsTimer?: ReturnType<typeof setTimeout>;
  private stopReachability = () => {};

  constructor(deps: ServiceDeps = {}) {
    this.storage = deps.storage === undefined ? localStorageIfUsable() : deps.storage;
    const onAnswer = (reachable: boolean) => onlineManager.setOnline(reachable);
    this.http = new Http({ fetch: deps.fetch, onAnswer, onServerDate: (server, local) => this.clock.sample(server, local) });
    this.cache = new JobsCache(this.client, this.http, (changes, quiet) => {
      this.refreshStatsSoon();
      if (!quiet) this.announcer.jobsChanged(changes);
    });
    this.live = new LiveUpdates({
      createEventSource: deps.createEventSource ?? ((url) => new EventSource(url)),
      onJob: (job) => this.cache.applyJob(job),
      onDeleted: (id) => this.cache.applyDeleted(id),
      onReset: () => void this.cache.reset(),
      onOpen: () => {
        onAnswer(true);
        // Sent now: refetchQueries cancels a refetch already on its way, which may predate the stream.
        void this.client.refetchQueries({ queryKey: jobKeys.lists, type: "active" });
        this.refreshStatsSoon();
      },
    });
    this.client.setQueryDefaults(jobKeys.ones, { gcTime: Infinity });
    this.client.setQueryDefaults(statsKey, { queryFn: ({ signal }) => this.http.getData<Stats>("/api/stats", signal) });
    this.client.setQueryDefaults(configKey, { queryFn: ({ signal }) => this.http.getData<AppConfig>("/api/config", signal), staleTime: Infinity });
    registerCreates(this.client, this.http, (job) => {
      this.cache.applyJob(job);
      this.announcer.created(job);
    });
  }

  /** Starts the stream and restores the outbox; resolves once unsent creates are resumed. */
  start(): Promise<void> {
    // Follows onlineManager and focusManager: paused creates resume and lists refetch when the server answers again.
    this.client.mount();
    this.live.start();
    let lost = false;
    this.stopReachability = onlineManager.subscribe((online) => {
      if (online) this.live.nudge();
      else this.live.abandon();
      if (online === lost) this.announcer.connection(online);
      lost = !online;
    });
    return persistCreates(this.client, this.storage);
  }

  stop(): void {
    this.live.stop();
    clearTimeout(this.statsTimer);
    this.stopReachability();
    this.client.unmount();
    this.client.clear();
  }

  /** The counts, a moment after a change: a burst of changes costs one request. */
  private refreshStatsSoon(): void {
    this.statsTimer ??= setTimeout(() => {
      this.statsTimer = undefined;
      void this.client.invalidateQueries({ queryKey: statsKey });
    }, 800);
  }
}

function localStorageIfUsable(): Storage | null {
  try {
    return localStorage; // reading it throws where storage is blocked
  } catch {
    return null;
  }
}
