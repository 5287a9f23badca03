/**
 * Every job the page knows, keyed by id. Updates arrive from several
 * places (events, list pages, polls, create responses) in no guaranteed
 * order; the rule that makes them agree is "the newest `updated_at` wins".
 * Deleted ids are remembered so a late, stale copy cannot bring a job back.
 */
import type { Job, JobStatus } from "../api/types";
import { isJob } from "../api/types";

export interface JobChange {
  job: Job;
  /** The copy it replaced; undefined for a job new to the page. */
  previous: Job | undefined;
}

/** Whether `incoming` should replace `existing`: not older than it. */
export function isNewerOrSame(incoming: Job, existing: Job): boolean {
  const a = Date.parse(incoming.updated_at);
  const b = Date.parse(existing.updated_at);
  if (Number.isNaN(a) || Number.isNaN(b)) return incoming.updated_at >= existing.updated_at;
  return a >= b;
}

/** Ids are time-ordered (ULID): the larger id is the newer job. */
export function newestFirst(a: Job, b: Job): number {
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

export interface SnapshotScope {
  /** Ids the store held when the snapshot was requested: only these can be found missing. */
  knownBefore: ReadonlySet<string>;
  /** The statuses the snapshot was filtered by (empty: all). */
  statuses: readonly JobStatus[];
  /**
   * The snapshot lists every matching job with an id >= this (null: every
   * matching job at all, i.e. the listing had no next page).
   */
  coversFrom: string | null;
}

export class JobStore {
  private readonly jobs = new Map<string, Job>();
  private readonly deleted = new Set<string>();
  private sorted: Job[] | null = null;
  private readonly listeners = new Set<() => void>();

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  has(id: string): boolean {
    return this.jobs.has(id);
  }

  ids(): Set<string> {
    return new Set(this.jobs.keys());
  }

  /** All jobs, newest first (the same array until something changes). */
  all(): readonly Job[] {
    this.sorted ??= [...this.jobs.values()].sort(newestFirst);
    return this.sorted;
  }

  /** Merges one job; returns the change, or null when it was stale or unchanged. */
  upsert(job: Job): JobChange | null {
    const change = this.merge(job);
    if (change) this.changed();
    return change;
  }

  /** Merges many jobs, notifying once. */
  upsertMany(jobs: readonly unknown[]): JobChange[] {
    const changes: JobChange[] = [];
    for (const job of jobs) {
      if (!isJob(job)) continue;
      const change = this.merge(job);
      if (change) changes.push(change);
    }
    if (changes.length > 0) this.changed();
    return changes;
  }

  remove(id: string): Job | undefined {
    this.deleted.add(id);
    const job = this.jobs.get(id);
    if (job) {
      this.jobs.delete(id);
      this.changed();
    }
    return job;
  }

  /**
   * Merges a fresh list (a page or a poll) and drops the jobs it proves gone:
   * known before the request, inside the range it covers, matching its
   * filter, yet absent. (With a status filter, "gone" may mean "no longer
   * in that status"; either way it no longer belongs in that view.)
   */
  applySnapshot(jobs: readonly unknown[], scope: SnapshotScope): JobChange[] {
    const changes: JobChange[] = [];
    const present = new Set<string>();
    for (const job of jobs) {
      if (!isJob(job)) continue;
      present.add(job.id);
      const change = this.merge(job);
      if (change) changes.push(change);
    }
    let removed = false;
    for (const id of scope.knownBefore) {
      if (present.has(id)) continue;
      const job = this.jobs.get(id);
      if (!job) continue;
      if (scope.coversFrom !== null && id < scope.coversFrom) continue;
      if (scope.statuses.length > 0 && !scope.statuses.includes(job.status)) continue;
      this.jobs.delete(id);
      removed = true;
    }
    if (changes.length > 0 || removed) this.changed();
    return changes;
  }

  private merge(job: Job): JobChange | null {
    if (this.deleted.has(job.id)) return null;
    const previous = this.jobs.get(job.id);
    if (previous) {
      if (!isNewerOrSame(job, previous)) return null;
      if (previous.updated_at === job.updated_at && previous.status === job.status) return null;
    }
    this.jobs.set(job.id, job);
    return { job, previous };
  }

  private changed(): void {
    this.sorted = null;
    for (const listener of [...this.listeners]) listener();
  }
}
