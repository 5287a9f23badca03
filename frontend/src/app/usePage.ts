/**
 * What the page shows, from the query cache, and what it can do: the hook
 * the components read. The list refetches every 4 s while the stream is
 * down and every 30 s while it is up (heartbeats are invisible to
 * EventSource, so this is what notices a silently dead stream).
 */
import { useMutation, useMutationState, useQuery } from "@tanstack/react-query";
import { useState, useSyncExternalStore } from "react";
import { ApiError, isRetryable, NetworkError, retryDelay } from "../api/http";
import type { AppConfig, CreateJobBody, Job, JobStatus, Stats } from "../api/types";
import { JOB_STATUSES } from "../api/types";
import { connectionState, hasEverConnected, subscribeReachability, type ConnectionState } from "../connectivity/reachability";
import type { LiveMode } from "../live/liveUpdates";
import { createJobKey, newCreate, sendCreate, type CreateJob, type CreateMutation } from "../outbox/outbox";
import type { Announcement } from "./announcer";
import { configKey, statsKey, type Services } from "./services";

/** A create the server has not confirmed: shown at once, in its own row. */
export interface PendingCreate {
  key: string;
  body: CreateJobBody;
  createdAt: string;
  /** sending: going out; queued: waiting to be (re)sent; rejected: the server refused it. */
  state: "sending" | "queued" | "rejected";
  message: string | null;
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
  mode: LiveMode;
  /** When the data shown was last known to be current (epoch ms). */
  lastUpdatedAt: number | null;
  announcement: Announcement | null;
}

export function usePage(services: Services) {
  const { client, cache, live } = services;
  const [statuses, setStatuses] = useState<readonly JobStatus[]>([]);
  const mode = useSyncExternalStore(live.subscribe, live.getMode);
  const connection = useSyncExternalStore(subscribeReachability, connectionState);
  const everConnected = useSyncExternalStore(subscribeReachability, hasEverConnected);
  const announcement = useSyncExternalStore(services.announcer.subscribe, services.announcer.getSnapshot);
  const list = useQuery({
    ...cache.listQuery(statuses),
    refetchInterval: mode === "stream" ? 30_000 : mode === "polling" ? 4_000 : false,
    // A first load gives up after three tries and says why; polling goes on.
    retry: (failures, error) => failures < 2 && isRetryable(error),
  });
  const stats = useQuery<Stats>({ queryKey: statsKey });
  const config = useQuery<AppConfig>({ queryKey: configKey, retry: true });
  const creates = useMutationState({
    filters: { mutationKey: createJobKey, predicate: (mutation) => mutation.state.status !== "success" },
    select: (mutation) => describeCreate(mutation as CreateMutation, connection),
  });
  const more = useMutation({
    mutationFn: () => cache.loadMore(statuses),
    retry: (failures, error) => failures < 2 && isRetryable(error),
    retryDelay,
  });

  const showsPending = statuses.length === 0 || statuses.includes("pending");
  const pendingCreates = creates
    .filter((create) => create.state === "rejected" || showsPending)
    .sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  const view: View = {
    config: config.data ?? null,
    stats: stats.data ?? null,
    statuses,
    jobs: list.data?.jobs ?? [],
    pendingCreates,
    outboxCount: creates.filter((create) => create.state !== "rejected").length,
    listState: list.data ? "ready" : list.isError ? "error" : "loading",
    listError: list.error ? errorMessage(list.error) : null,
    hasMore: Boolean(list.data?.next),
    loadingMore: more.isPending,
    loadMoreError: more.error ? errorMessage(more.error) : null,
    connection,
    everConnected,
    mode,
    lastUpdatedAt: Math.max(list.dataUpdatedAt, services.lastEventAt ?? 0) || null,
    announcement,
  };

  const actions = {
    createJob(delaySeconds: number | null) {
      sendCreate(client, newCreate(delaySeconds === null ? {} : { delay_seconds: delaySeconds }));
    },
    setFilter(next: readonly JobStatus[]) {
      setStatuses((current) => {
        const ordered = JOB_STATUSES.filter((status) => next.includes(status));
        return ordered.join() === current.join() ? current : ordered;
      });
      more.reset();
    },
    loadMore() {
      if (!more.isPending) more.mutate();
    },
    retryList() {
      void list.refetch();
      live.nudge();
      void client.resumePausedMutations();
    },
    dismissRejected(key: string) {
      const cache = client.getMutationCache();
      for (const mutation of cache.findAll({ mutationKey: createJobKey, status: "error" })) {
        if ((mutation.state.variables as CreateJob | undefined)?.key === key) cache.remove(mutation);
      }
    },
  };
  return { view, actions };
}

function describeCreate(mutation: CreateMutation, connection: ConnectionState): PendingCreate {
  const { variables, status, isPaused, failureCount, failureReason, error } = mutation.state;
  const create = variables ?? { key: "", body: {}, createdAt: "" };
  const waiting = isPaused || failureCount > 0 || connection === "offline";
  return {
    key: create.key,
    body: create.body,
    createdAt: create.createdAt,
    state: status === "error" ? "rejected" : waiting ? "queued" : "sending",
    message: status === "error" ? errorMessage(error) : failureReason ? errorMessage(failureReason) : null,
  };
}

export function errorMessage(error: unknown): string {
  if (error instanceof NetworkError) return "Cannot reach the server. Retrying when it is back.";
  if (error instanceof ApiError || error instanceof Error) return error.message;
  return "Something went wrong.";
}
