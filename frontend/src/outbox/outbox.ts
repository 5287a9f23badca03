/**
 * The outbox: creates are TanStack Query mutations, kept (in `localStorage`,
 * by the persister) until the server has answered for them. The
 * Idempotency-Key is made once, when the user asks, and travels in the
 * variables: every retry, and the create resumed after a reload, sends the
 * same key, so the server makes one job of it. They go one at a time,
 * oldest first (one scope), pause while the server is unreachable, and a
 * create the server refused stays in `error` until dismissed.
 */
import type { Mutation, QueryClient } from "@tanstack/react-query";
import { createSyncStoragePersister } from "@tanstack/query-sync-storage-persister";
import { persistQueryClient } from "@tanstack/react-query-persist-client";
import { ApiError, isRetryable, retryDelay, type Http } from "../api/http";
import { isJob, type CreateJobBody, type Job } from "../api/types";

export const createJobKey = ["jobs", "create"] as const;
export const OUTBOX_STORAGE_KEY = "jobs.outbox.v2";
// Where the outbox kept its creates before they were mutations.
const OLD_STORAGE_KEY = "jobs.outbox.v1";

export interface CreateJob {
  /** The Idempotency-Key of every attempt of this create. */
  key: string;
  body: CreateJobBody;
  /** When the user asked for it (ISO 8601). */
  createdAt: string;
}

export type CreateMutation = Mutation<Job, Error, CreateJob>;

/** The create's function and policy, registered by key so that a restored create can run. */
export function registerCreates(client: QueryClient, http: Http, onCreated: (job: Job) => void): void {
  client.setMutationDefaults(createJobKey, {
    mutationFn: async ({ key, body }: CreateJob) => {
      const job = await http.post<unknown>("/api/jobs", body, { "Idempotency-Key": key });
      // The job exists but cannot be shown: a retry with the same key replays it.
      if (!isJob(job)) throw new ApiError(502, { detail: "The server's answer could not be read." });
      return job;
    },
    retry: (_failures, error) => isRetryable(error),
    retryDelay,
    scope: { id: "outbox" },
    gcTime: Infinity, // a refused create stays until dismissed
    onSuccess: (job: Job) => onCreated(job),
  });
  // A confirmed create is done with: its job is in the list now.
  client.getMutationCache().subscribe(({ type, mutation }) => {
    if (type === "updated" && mutation?.state.status === "success" && mutation.options.mutationKey?.join() === createJobKey.join()) {
      client.getMutationCache().remove(mutation);
    }
  });
}

export function newCreate(body: CreateJobBody): CreateJob {
  return { key: crypto.randomUUID(), body, createdAt: new Date().toISOString() };
}

export function sendCreate(client: QueryClient, create: CreateJob): void {
  const mutation = client.getMutationCache().build(client, { mutationKey: createJobKey });
  mutation.execute(create).catch(() => undefined); // a refusal is shown from the mutation's state
}

/** Keeps unconfirmed creates in `storage`, and sends again those a previous page load left. */
export async function persistCreates(client: QueryClient, storage: Storage | null): Promise<void> {
  if (!storage) return;
  // Written at once (no throttle): a reload a moment after "New job" must not lose it.
  const persister = createSyncStoragePersister({ storage, key: OUTBOX_STORAGE_KEY, throttleTime: 0 });
  const dehydrateOptions = { shouldDehydrateQuery: () => false, shouldDehydrateMutation: (m: Mutation) => m.state.status === "pending" };
  await persistQueryClient({ queryClient: client, persister, maxAge: Infinity, dehydrateOptions })[1];
  // Whatever a restored create was doing when the page went away (paused, in flight, waiting to retry), it goes on.
  for (const mutation of client.getMutationCache().findAll({ mutationKey: createJobKey, status: "pending" })) {
    mutation.continue().catch(() => undefined);
  }
  try {
    const old = JSON.parse(storage.getItem(OLD_STORAGE_KEY) ?? "null") as { entries?: CreateJob[] } | null;
    for (const { key, body, createdAt } of old?.entries ?? []) sendCreate(client, { key, body, createdAt });
  } catch {
    // Unreadable: nothing to take over.
  }
  storage.removeItem(OLD_STORAGE_KEY);
}
