import { QueryClient, QueryObserver } from "@tanstack/react-query";
import { describe, expect, it } from "vitest";
import { Http } from "../api/http";
import type { Job } from "../api/types";
import { FakeServer } from "../testing/fakeServer";
import { makeJob } from "../testing/jobs";
import { JobsCache, isNewerOrSame, jobKeys, type JobList } from "./jobsCache";

function setup() {
  const server = new FakeServer();
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const cache = new JobsCache(client, new Http({ fetch: server.fetch as typeof fetch }));
  const load = () => client.fetchQuery({ ...cache.listQuery([]), staleTime: 0 });
  const list = () => client.getQueryData<JobList>(jobKeys.list([]))?.jobs ?? [];
  return { server, client, cache, load, list };
}

const at = (seconds: number) => `2024-05-01T12:00:${String(seconds).padStart(2, "0")}.000Z`;

/** Holds list answers back until the returned function is called. */
function holdLists(server: FakeServer): () => void {
  let release: () => void = () => undefined;
  server.listGate = new Promise<void>((resolve) => (release = resolve));
  return () => {
    server.listGate = null;
    release();
  };
}

describe("JobsCache", () => {
  it("orders by updated_at, falling back to text when a date cannot be read", () => {
    expect(isNewerOrSame(makeJob({ updated_at: at(2) }), makeJob({ updated_at: at(1) }))).toBe(true);
    expect(isNewerOrSame(makeJob({ updated_at: at(1) }), makeJob({ updated_at: at(2) }))).toBe(false);
    expect(isNewerOrSame(makeJob({ updated_at: "b" }), makeJob({ updated_at: "a" }))).toBe(true);
  });

  it("applies events newest first and ignores an older copy that arrives late", async () => {
    const t = setup();
    const job = makeJob({ updated_at: at(0) });
    t.server.jobs = [job];
    await t.load();
    t.cache.applyJob({ ...job, status: "completed", updated_at: at(31) });
    t.cache.applyJob({ ...job, status: "running", updated_at: at(30) });
    expect(t.list().map((j) => j.status)).toEqual(["completed"]);
  });

  it("never lets a list answer take a job back in time", async () => {
    const t = setup();
    const job = makeJob({ updated_at: at(0) });
    t.server.jobs = [job];
    await t.load();
    const release = holdLists(t.server);
    const refetch = t.load(); // the server lists the pending copy...
    await Promise.resolve();
    t.cache.applyJob({ ...job, status: "completed", updated_at: at(31) }); // ...then an event says completed
    release();
    await refetch;
    expect(t.list().map((j) => j.status)).toEqual(["completed"]);
  });

  it("keeps a job first seen while the list was on its way, even on the first load", async () => {
    const t = setup();
    const release = holdLists(t.server);
    const first = t.load();
    await Promise.resolve();
    const created = makeJob();
    t.cache.applyJob(created);
    release();
    await first;
    expect(t.list().map((j) => j.id)).toEqual([created.id]);
  });

  it("drops a job known before the request that the answer no longer lists", async () => {
    const t = setup();
    const kept = makeJob();
    const gone = makeJob();
    t.server.jobs = [gone, kept];
    await t.load();
    t.server.jobs = [kept];
    await t.load();
    expect(t.list().map((j) => j.id)).toEqual([kept.id]);
  });

  it("does not bring a deleted job back from a stale list", async () => {
    const t = setup();
    const job = makeJob();
    t.server.jobs = [job];
    await t.load();
    t.cache.applyDeleted(job.id);
    expect(t.list()).toEqual([]);
    await t.client.fetchQuery({ ...t.cache.listQuery([]), staleTime: 0, queryKey: jobKeys.list([]) });
    expect(t.list()).toEqual([]);
  });

  it("sends the ETag it has and keeps its data on a 304", async () => {
    const t = setup();
    t.server.jobs = [makeJob()];
    await t.load();
    const before = t.list();
    await t.load();
    const lists = t.server.requests.filter((r) => r.url.startsWith("/api/jobs"));
    expect(lists[1]?.headers["If-None-Match"]).toBeDefined();
    expect(t.list()).toBe(before);
  });

  it("starts the list over after a reset, keeping a newer copy an event brought", async () => {
    const t = setup();
    const job = makeJob({ updated_at: at(0) });
    const gone = makeJob();
    t.server.jobs = [gone, job];
    await t.load();
    const shown = new QueryObserver(t.client, { ...t.cache.listQuery([]), staleTime: Infinity }).subscribe(() => undefined);
    const release = holdLists(t.server);
    t.server.jobs = [job];
    const reset = t.cache.reset();
    await Promise.resolve();
    t.cache.applyJob({ ...job, status: "completed", updated_at: at(31) });
    release();
    await reset;
    expect(t.list().map((j: Job) => [j.id, j.status])).toEqual([[job.id, "completed"]]);
    shown();
  });

  it("places a job by the filter: in when it starts matching, out when it stops", async () => {
    const t = setup();
    const job = makeJob({ status: "completed", updated_at: at(0) });
    t.server.jobs = [job];
    await t.client.fetchQuery(t.cache.listQuery(["completed"]));
    const completed = () => t.client.getQueryData<JobList>(jobKeys.list(["completed"]))?.jobs.map((j) => j.id);
    expect(completed()).toEqual([job.id]);
    t.cache.applyJob({ ...job, status: "failed", updated_at: at(5) });
    expect(completed()).toEqual([]);
    t.cache.applyJob({ ...job, status: "completed", updated_at: at(9) });
    expect(completed()).toEqual([job.id]);
  });
});
