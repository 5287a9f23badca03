/**
 * The jobs in TanStack Query's cache, and the one rule that makes updates
 * from every source agree: a job's copy with the newest `updated_at` wins.
 *
 * - `["jobs", "one", id]`: the newest copy of each job the page has seen,
 *   from any source (events, lists, creates, its own query).
 * - `["jobs", "list", statuses]`: one filter's jobs, newest first, as far
 *   as pages were loaded, with the ETag of the last answer.
 *
 * Events and creates are written with `setQueryData`. A list answer is
 * merged into the cache as it is when the answer arrives, not when it was
 * asked for: a copy older than one an event brought meanwhile loses, a job
 * the cache learned of meanwhile stays, and a job known before the request
 * but not listed in the range the answer covers is gone. Deleted ids are
 * remembered so that a stale copy cannot bring a job back.
 */
import { queryOptions, type QueryClient } from "@tanstack/react-query";
import type { Http } from "../api/http";
import { isJob, type Job, type JobPage, type JobStatus } from "../api/types";

export const PAGE_SIZE = 50;

export interface JobList {
  jobs: Job[];
  /** The next page's link; null once every matching job is loaded. */
  next: string | null;
  etag: string | null;
  /** Set by a reset: the next answer starts the list over. */
  reset?: boolean;
}

export interface JobChange {
  job: Job;
  /** The copy it replaced; undefined for a job new to the page. */
  previous: Job | undefined;
}

export const jobKeys = {
  lists: ["jobs", "list"] as const,
  list: (statuses: readonly JobStatus[]) => ["jobs", "list", statuses] as const,
  ones: ["jobs", "one"] as const,
  one: (id: string) => ["jobs", "one", id] as const,
};

/** Whether `incoming` should replace `existing`: not older than it. */
export function isNewerOrSame(incoming: Job, existing: Job): boolean {
  const a = Date.parse(incoming.updated_at);
  const b = Date.parse(existing.updated_at);
  if (Number.isNaN(a) || Number.isNaN(b)) return incoming.updated_at >= existing.updated_at;
  return a >= b;
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
    return queryOptions({
      queryKey: jobKeys.list(statuses),
      queryFn: ({ signal }) => this.fetchList(statuses, signal),
    });
  }

  jobQuery(id: string) {
    return queryOptions({
      queryKey: jobKeys.one(id),
      queryFn: async ({ signal }) => {
        const { data } = await this.http.get<unknown>(`/api/jobs/${encodeURIComponent(id)}`, null, signal);
        if (!isJob(data)) throw new Error("The server sent a job this page cannot read.");
        return this.remember(data, []) ?? data;
      },
      // Events keep it current; it is fetched only when the page has no copy.
      staleTime: Infinity,
    });
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
    this.forEachList((list) => withoutJob(list, id));
    this.onChanges([], false);
  }

  /** The server cannot replay what was missed: every list starts over with its next answer. */
  reset(): Promise<void> {
    this.forEachList((list) => ({ ...list, etag: null, reset: true }));
    return this.client.refetchQueries({ queryKey: jobKeys.lists });
  }

  async loadMore(statuses: readonly JobStatus[]): Promise<void> {
    const key = jobKeys.list(statuses);
    const next = this.client.getQueryData<JobList>(key)?.next;
    if (!next) return;
    const url = new URL(next, "http://same-origin.invalid");
    const { data } = await this.http.get<JobPage>(url.pathname + url.search);
    if (!data) return;
    const changes: JobChange[] = [];
    const fresh = data.results.map((job) => (isJob(job) ? this.remember(job, changes) : null));
    this.client.setQueryData<JobList>(key, (list) =>
      list ? { ...list, next: data.next, jobs: newestFirst([...list.jobs, ...onlyMatching(fresh, statuses)]) } : list,
    );
    this.onChanges(changes, false);
  }

  private async fetchList(statuses: readonly JobStatus[], signal: AbortSignal): Promise<JobList> {
    const key = jobKeys.list(statuses);
    const asked = this.client.getQueryData<JobList>(key);
    const knownBefore = new Set(this.knownIds());
    const answer = await this.http.get<JobPage>(listPath(statuses), asked?.etag ?? null, signal);
    // What events changed while the request was on its way.
    const latest = this.client.getQueryData<JobList>(key);
    if (answer.data === null && latest) return latest;
    if (answer.data === null) throw new Error("The server answered 304 to a request without an ETag.");
    const page = answer.data;
    const changes: JobChange[] = [];
    const listed = onlyMatching(
      page.results.map((job) => (isJob(job) ? this.remember(job, changes) : null)),
      statuses,
    );
    const listedIds = new Set(page.results.map((job) => job.id));
    const startOver = !latest || latest.reset === true;
    const coversFrom = page.next === null || startOver ? null : oldestId(page.results);
    // Kept: jobs first seen after the request left, and jobs beyond the range this page covers.
    const keep = (job: Job) =>
      !listedIds.has(job.id) && (!knownBefore.has(job.id) || (coversFrom !== null && job.id < coversFrom));
    const extra = latest ? latest.jobs.filter(keep) : onlyMatching(this.learnedSince(knownBefore), statuses);
    this.onChanges(changes, !latest);
    return {
      jobs: newestFirst([...listed, ...extra]),
      next: startOver ? page.next : latest.next,
      etag: answer.etag,
    };
  }

  /**
   * Records `job` as the newest copy of itself unless a newer copy is
   * known; returns the newest copy (null for a deleted job) and adds to
   * `changes` when the job is new to the page or its state moved on.
   */
  private remember(job: Job, changes: JobChange[]): Job | null {
    if (this.deleted.has(job.id)) return null;
    const key = jobKeys.one(job.id);
    const previous = this.client.getQueryData<Job>(key);
    if (previous && !isNewerOrSame(job, previous)) return previous;
    if (previous && previous.updated_at === job.updated_at && previous.status === job.status) return previous;
    this.client.setQueryData(key, job);
    changes.push({ job, previous });
    return job;
  }

  private knownIds(): string[] {
    return this.client
      .getQueryCache()
      .findAll({ queryKey: jobKeys.ones })
      .map((query) => String(query.queryKey[2]));
  }

  private learnedSince(knownBefore: ReadonlySet<string>): Job[] {
    return this.knownIds()
      .filter((id) => !knownBefore.has(id))
      .map((id) => this.client.getQueryData<Job>(jobKeys.one(id)))
      .filter((job): job is Job => job !== undefined);
  }

  private forEachList(update: (list: JobList, statuses: readonly JobStatus[]) => JobList): void {
    for (const query of this.client.getQueryCache().findAll({ queryKey: jobKeys.lists })) {
      const statuses = query.queryKey[2] as readonly JobStatus[];
      this.client.setQueryData<JobList>(query.queryKey, (list) => (list ? update(list, statuses) : list));
    }
  }
}

export function listPath(statuses: readonly JobStatus[]): string {
  const filter = statuses.length > 0 ? `&status=${statuses.join(",")}` : "";
  return `/api/jobs?limit=${PAGE_SIZE}${filter}`;
}

function matches(job: Job, statuses: readonly JobStatus[]): boolean {
  return statuses.length === 0 || statuses.includes(job.status);
}

function onlyMatching(jobs: readonly (Job | null)[], statuses: readonly JobStatus[]): Job[] {
  return jobs.filter((job): job is Job => job !== null && matches(job, statuses));
}

/** Ids are time-ordered (ULID): the larger id is the newer job. */
function newestFirst(jobs: Job[]): Job[] {
  const unique = new Map(jobs.map((job) => [job.id, job]));
  return [...unique.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

function oldestId(jobs: readonly { id: string }[]): string | null {
  return jobs.reduce<string | null>((oldest, job) => (oldest === null || job.id < oldest ? job.id : oldest), null);
}

function withoutJob(list: JobList, id: string): JobList {
  return list.jobs.some((job) => job.id === id) ? { ...list, jobs: list.jobs.filter((job) => job.id !== id) } : list;
}

/** `job`'s new place in `list`: in it if it matches and falls within the loaded pages, out of it otherwise. */
function placeJob(list: JobList, job: Job, statuses: readonly JobStatus[]): JobList {
  const boundary = list.next === null ? null : oldestId(list.jobs);
  const without = withoutJob(list, job.id);
  if (!matches(job, statuses) || (boundary !== null && job.id < boundary)) return without;
  return { ...without, jobs: newestFirst([...without.jobs, job]) };
}
