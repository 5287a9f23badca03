/**
 * The outbox: creates are TanStack Query mutations, kept until the server
 * has answered for them.
 *
 * - The Idempotency-Key is made once, when the user asks, and travels in the
 *   mutation's variables: every retry, and the resumed mutation after a
 *   reload, sends the same key, so the server makes one job of it.
 * - Retries: capped, jittered backoff for anything but a final 4xx; paused
 *   while the server is unreachable (`onlineManager`, fed by real answers)
 *   and resumed as soon as it answers again.
 * - One at a time, oldest first (one mutation scope), so jobs are created
 *   in the order they were asked for.
 * - The persister writes every unconfirmed create to `localStorage`; a
 *   reload restores them and resumes them. A final 4xx leaves the mutation
 *   in `error` until the user dismisses it.
 */
import type { Mutation, QueryClient } from "@tanstack/react-query";
import { createSyncStoragePersister } from "@tanstack/query-sync-storage-persister";
import { persistQueryClient, type PersistedClient } from "@tanstack/react-query-persist-client";
import { ApiError, isRetryable, retryDelay, type Http } from "../api/http";
import { isJob, type CreateJobBody, type Job } from "../api/types";

export const createJobKey = ["jobs", "create"] as const;
export const OUTBOX_STORAGE_KEY = "jobs.outbox.v2";
// Where the outbox kept its entries before it was made of mutations.
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
      if (!isJob(job)) throw new ApiError(502, { detail: "The server's answer could not be read." }, null);
      return job;
    },
    retry: (_failures, error) => isRetryable(error),
    retryDelay,
    scope: { id: "outbox" },
    // A refused create stays (in `error`) until the user dismisses it.
    gcTime: Infinity,
    onSuccess: (job: Job) => onCreated(job),
  });
  // A confirmed create is done with: its job is in the list now.
  client.getMutationCache().subscribe((event) => {
    const mutation = event.mutation;
    if (event.type === "updated" && mutation?.state.status === "success" && mutation.options.mutationKey?.[1] === "create") {
      client.getMutationCache().remove(mutation);
    }
  });
}

export function newCreate(body: CreateJobBody): CreateJob {
  return { key: crypto.randomUUID(), body, createdAt: new Date().toISOString() };
}

export function sendCreate(client: QueryClient, create: CreateJob): void {
  client
    .getMutationCache()
    .build(client, { mutationKey: createJobKey })
    .execute(create)
    .catch(() => undefined); // a refusal is shown from the mutation's state
}

/**
 * Keeps unconfirmed creates in `storage` and resumes those a previous page
 * load left. Resolves once they are restored.
 */
export async function persistCreates(client: QueryClient, storage: Storage | null): Promise<void> {
  if (!storage) return;
  const persister = createSyncStoragePersister({
    storage,
    key: OUTBOX_STORAGE_KEY,
    // Written at once: a reload a moment after "New job" must not lose it.
    throttleTime: 0,
    // Restored creates are resumed; only paused mutations are, whatever they were doing when saved.
    serialize: (persisted: PersistedClient) =>
      JSON.stringify({
        ...persisted,
        clientState: {
          ...persisted.clientState,
          mutations: persisted.clientState.mutations.map((m) => ({ ...m, state: { ...m.state, isPaused: true } })),
        },
      }),
  });
  const [, restored] = persistQueryClient({
    queryClient: client,
    persister,
    maxAge: Infinity,
    dehydrateOptions: {
      shouldDehydrateQuery: () => false,
      shouldDehydrateMutation: (mutation) => mutation.state.status === "pending",
    },
  });
  await restored;
  adoptOldOutbox(client, storage);
  await client.resumePausedMutations();
}

function adoptOldOutbox(client: QueryClient, storage: Storage): void {
  try {
    const old = JSON.parse(storage.getItem(OLD_STORAGE_KEY) ?? "null") as { entries?: CreateJob[] } | null;
    for (const entry of old?.entries ?? []) sendCreate(client, { key: entry.key, body: entry.body, createdAt: entry.createdAt });
    storage.removeItem(OLD_STORAGE_KEY);
  } catch {
    // Unreadable: nothing to adopt.
  }
}
