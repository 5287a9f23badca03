/**
 * The jobs in TanStack Query's cache, and the rule that makes updates from
 * every source agree: the copy with the newest `updated_at` wins.
 * `["jobs", "one", id]` holds the newest copy of each job seen;
 * `["jobs", "list", statuses]` one filter's jobs, newest first, as far as
 * pages were loaded. A list answer is merged into the cache as it is when
 * the answer arrives: a copy older than one an event brought meanwhile
 * loses, a job first seen meanwhile stays, a job known before the request
 * but missing from the range the answer covers is gone. Deleted ids are
 * remembered, so that a stale copy cannot bring a job back.
 */
import { queryOptions, type QueryClient } from "@tanstack/react-query";
import type { Http } from "../api/http";
import { isJob, type Job, type JobPage, type JobStatus } from "../api/types";

export interface JobList {
  jobs: Job[];
  /** The next page's link; null once every matching job is loaded. */
  next: string | null;
  etag: string | null;
}

/** A job that changed, and the copy it replaced (undefined for a job new to the page). */
export type JobChange = { job: Job; previous: Job | undefined };

export const jobKeys = {
  lists: ["jobs", "list"] as const,
  list: (statuses: readonly JobStatus[]) => ["jobs", "list", statuses] as const,
  ones: ["jobs", "one"] as const,
  one: (id: string) => ["jobs", "one", id] as const,
};

/** Whether `incoming` should replace `existing`: not older than it. */
export function isNewerOrSame(incoming: Job, existing: Job): boolean {
  const [a, b] = [Date.parse(incoming.updated_at), Date.parse(existing.updated_at)];
  return Number.isNaN(a) || Number.isNaN(b) ? incoming.updated_at >= existing.updated_at : a >= b;
}

export class JobsCache {
  private readonly deleted = new Set<string>();

  constructor(
    private readonly client: QueryClient,
    private readonly http: Http,
    /** Jobs that changed; `quiet` on a first load (nothing to announce). */
    private readonly onChanges: (changes: JobChange[], quiet: boolean) => void = () => undefined,
  ) {}

  listQuery(statuses: readonly JobStatus[]) {
    return queryOptions({ queryKey: jobKeys.list(statuses), queryFn: ({ signal }) => this.fetchList(statuses, signal) });
  }

  /** One job; events keep it current, so it is fetched only when the page has no copy. */
  jobQuery(id: string) {
    const queryFn = async ({ signal }: { signal: AbortSignal }) =>
      this.remember(await this.http.getData<unknown>(`/api/jobs/${encodeURIComponent(id)}`, signal), []) ?? Promise.reject(new Error("No such job."));
    return queryOptions({ queryKey: jobKeys.one(id), queryFn, staleTime: Infinity });
  }

  /** A job from an event or a create's answer. */
  applyJob(job: Job): void {
    const changes: JobChange[] = [];
    if (this.remember(job, changes) !== job || changes.length === 0) return;
    this.forEachList((list, statuses) => placeJob(list, job, statuses));
    this.onChanges(changes, false);
  }

  applyDeleted(id: string): void {
    this.deleted.add(id);
    this.client.removeQueries({ queryKey: jobKeys.one(id), exact: true });
    this.forEachList((list) => ({ ...list, jobs: list.jobs.filter((job) => job.id !== id) }));
    this.onChanges([], false);
  }

  /** The server cannot replay what was missed: every list starts over (newer copies and new jobs still win). */
  reset(): Promise<void> {
    return this.client.resetQueries({ queryKey: jobKeys.lists });
  }

  async loadMore(statuses: readonly JobStatus[]): Promise<void> {
    const key = jobKeys.list(statuses);
    const next = this.client.getQueryData<JobList>(key)?.next;
    if (!next) return;
    const url = new URL(next, "http://same-origin.invalid");
    const { data } = await this.http.get<JobPage>(url.pathname + url.search);
    if (!data) return;
    const changes: JobChange[] = [];
    const more = matching(data.results.map((job) => this.remember(job, changes)), statuses);
    this.client.setQueryData<JobList>(key, (list) => list && { ...list, next: data.next, jobs: newestFirst([...list.jobs, ...more]) });
    this.onChanges(changes, false);
  }

  private async fetchList(statuses: readonly JobStatus[], signal: AbortSignal): Promise<JobList> {
    const key = jobKeys.list(statuses);
    const knownBefore = new Set(this.knownIds());
    const path = `/api/jobs?limit=50${statuses.length > 0 ? `&status=${statuses.join(",")}` : ""}`;
    const answer = await this.http.get<JobPage>(path, this.client.getQueryData<JobList>(key)?.etag, signal);
    const latest = this.client.getQueryData<JobList>(key); // with what events brought meanwhile
    if (answer.data === null && latest) return latest;
    if (answer.data === null) throw new Error("A 304 to a request without an ETag.");
    const page = answer.data;
    const changes: JobChange[] = [];
    const listed = matching(page.results.map((job) => this.remember(job, changes)), statuses);
    const listedIds = new Set(page.results.map((job) => job.id));
    const coversFrom = page.next === null || !latest ? null : oldestId(page.results);
    // Kept besides: jobs first seen after the request left, and jobs beyond the range this page covers.
    const kept = (job: Job) => !listedIds.has(job.id) && (!knownBefore.has(job.id) || (coversFrom !== null && job.id < coversFrom));
    const others = latest ? latest.jobs : matching(this.knownIds().map((id) => this.client.getQueryData<Job>(jobKeys.one(id)) ?? null), statuses);
    this.onChanges(changes, !latest);
    return { jobs: newestFirst([...listed, ...others.filter(kept)]), next: latest ? latest.next : page.next, etag: answer.etag };
  }

  /**
   * Records `job` as the newest copy of itself unless a newer one is known.
   * Returns the newest copy (null for a deleted or unreadable job), and
   * adds to `changes` when the job is new to the page or has moved on.
   */
  private remember(job: unknown, changes: JobChange[]): Job | null {
    if (!isJob(job) || this.deleted.has(job.id)) return null;
    const previous = this.client.getQueryData<Job>(jobKeys.one(job.id));
    if (previous && (!isNewerOrSame(job, previous) || (previous.updated_at === job.updated_at && previous.status === job.status))) {
      return previous;
    }
    this.client.setQueryData(jobKeys.one(job.id), job);
    changes.push({ job, previous });
    return job;
  }

  private knownIds(): string[] {
    return this.client.getQueryCache().findAll({ queryKey: jobKeys.ones }).map((query) => String(query.queryKey[2]));
  }

  private forEachList(update: (list: JobList, statuses: readonly JobStatus[]) => JobList): void {
    for (const query of this.client.getQueryCache().findAll({ queryKey: jobKeys.lists })) {
      this.client.setQueryData<JobList>(query.queryKey, (list) => list && update(list, query.queryKey[2] as JobStatus[]));
    }
  }
}

function matching(jobs: (Job | null)[], statuses: readonly JobStatus[]): Job[] {
  return jobs.filter((job): job is Job => job !== null && (statuses.length === 0 || statuses.includes(job.status)));
}

/** Ids are time-ordered (ULID): the larger id is the newer job. */
function newestFirst(jobs: Job[]): Job[] {
  return [...new Map(jobs.map((job) => [job.id, job])).values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

function oldestId(jobs: readonly { id: string }[]): string | null {
  return jobs.reduce<string | null>((oldest, job) => (oldest === null || job.id < oldest ? job.id : oldest), null);
}

/** `job`'s place in `list`: in it if it matches and falls within the loaded pages, out of it otherwise. */
function placeJob(list: JobList, job: Job, statuses: readonly JobStatus[]): JobList {
  const boundary = list.next === null ? null : oldestId(list.jobs);
  const jobs = list.jobs.filter((other) => other.id !== job.id);
  const belongs = matching([job], statuses).length > 0 && (boundary === null || job.id >= boundary);
  return { ...list, jobs: belongs ? newestFirst([...jobs, job]) : jobs };
}
