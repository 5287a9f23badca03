/**
 * What the page shows, from the query cache, and what it can do. The list
 * refetches every 4 s while the stream is down, and every 30 s while it is
 * up (heartbeats are invisible to EventSource: this notices a dead stream).
 */
import { onlineManager, useMutation, useMutationState, useQuery } from "@tanstack/react-query";
import { useState, useSyncExternalStore } from "react";
import { ApiError, isRetryable, NetworkError, retryDelay } from "../api/http";
import { JOB_STATUSES, type AppConfig, type JobStatus, type Stats } from "../api/types";
import type { LiveMode } from "../live/liveUpdates";
import { createJobKey, newCreate, sendCreate, type CreateMutation } from "../outbox/outbox";
import { configKey, statsKey, type Services } from "./services";

// A first load, or a page of "load more", gives up after three tries and says why; polling goes on.
const threeTries = { retry: (failures: number, error: unknown) => failures < 2 && isRetryable(error), retryDelay };

const REFETCH_EVERY: Record<LiveMode, number | false> = { stream: 30_000, polling: 4_000, connecting: false };
const subscribeOnline = (listener: () => void) => onlineManager.subscribe(listener);

export function usePage(services: Services) {
  const { client, cache, live } = services;
  const [statuses, setStatuses] = useState<readonly JobStatus[]>([]);
  const mode = useSyncExternalStore(live.subscribe, live.getMode);
  const online = useSyncExternalStore(subscribeOnline, () => onlineManager.isOnline());
  const list = useQuery({ ...cache.listQuery(statuses), ...threeTries, refetchInterval: REFETCH_EVERY[mode] });
  const stats = useQuery<Stats>({ queryKey: statsKey });
  const config = useQuery<AppConfig>({ queryKey: configKey, retry: true });
  const more = useMutation({ mutationFn: () => cache.loadMore(statuses), ...threeTries });
  // "online" once the server has answered (the list loaded) and nothing has failed since.
  const everConnected = list.dataUpdatedAt > 0 || list.error instanceof ApiError;
  const connection = online && everConnected ? "online" : "offline";
  const creates = useMutationState({
    filters: { mutationKey: createJobKey, predicate: (mutation) => mutation.state.status !== "success" },
    select: (mutation) => describeCreate(mutation as CreateMutation, connection === "offline"),
  });

  const view = {
    config: config.data ?? null,
    stats: stats.data ?? null,
    statuses,
    jobs: list.data?.jobs ?? [],
    pendingCreates: creates.filter((c) => c.state === "rejected" || statuses.length === 0 || statuses.includes("pending")).sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1)),
    outboxCount: creates.filter((create) => create.state !== "rejected").length,
    listState: list.data ? "ready" : list.isError ? "error" : ("loading" as "ready" | "error" | "loading"),
    listError: list.error ? errorMessage(list.error) : null,
    hasMore: Boolean(list.data?.next),
    loadingMore: more.isPending,
    loadMoreError: more.error ? errorMessage(more.error) : null,
    connection,
    everConnected,
    mode,
    /** When the data shown was last known to be current (epoch ms). */
    lastUpdatedAt: list.dataUpdatedAt || null,
    announcement: useSyncExternalStore(services.announcer.subscribe, services.announcer.getSnapshot),
  };

  const actions = {
    createJob: (delay: number | null) => sendCreate(client, newCreate(delay === null ? {} : { delay_seconds: delay })),
    setFilter(next: readonly JobStatus[]) {
      const ordered = JOB_STATUSES.filter((status) => next.includes(status));
      setStatuses((current) => (ordered.join() === current.join() ? current : ordered));
      more.reset();
    },
    loadMore: () => more.isPending || more.mutate(),
    // An answer brings the rest back too: onlineManager resumes creates, and the stream is reopened.
    retryList: () => void list.refetch(),
    dismissRejected(key: string) {
      const mutations = client.getMutationCache();
      for (const mutation of mutations.findAll({ mutationKey: createJobKey, status: "error" })) {
        if ((mutation as CreateMutation).state.variables?.key === key) mutations.remove(mutation);
      }
    },
  };
  return { view, actions };
}

export type View = ReturnType<typeof usePage>["view"];
export type PendingCreate = ReturnType<typeof describeCreate>;

/** sending: going out; queued: waiting to be (re)sent; rejected: the server refused it. */
function describeCreate(mutation: CreateMutation, offline: boolean) {
  const { variables, status, isPaused, failureCount, failureReason, error } = mutation.state;
  const waiting = isPaused || failureCount > 0 || offline;
  return {
    key: variables?.key ?? "",
    body: variables?.body ?? {},
    createdAt: variables?.createdAt ?? "",
    state: (status === "error" ? "rejected" : waiting ? "queued" : "sending") as "sending" | "queued" | "rejected",
    message: status === "error" ? errorMessage(error) : failureReason ? errorMessage(failureReason) : null,
  };
}

export function errorMessage(error: unknown): string {
  if (error instanceof NetworkError) return "Cannot reach the server. Retrying when it is back.";
  return error instanceof Error ? error.message : "Something went wrong.";
}
