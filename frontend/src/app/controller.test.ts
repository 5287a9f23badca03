import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiClient } from "../api/client";
import type { Job } from "../api/types";
import { FakeEventSource } from "../testing/fakeEventSource";
import { makeJob } from "../testing/jobs";
import { MemoryStorage } from "../testing/memoryStorage";
import { Controller } from "./controller";

interface Request {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** A tiny stand-in for the backend: jobs in memory, and a switch to drop the network. */
class FakeServer {
  jobs: Job[] = [];
  reachable = true;
  requests: Request[] = [];
  createStatus = 202;

  fetch = (url: string, init: RequestInit = {}): Promise<Response> => {
    const request: Request = {
      method: init.method ?? "GET",
      url,
      headers: (init.headers ?? {}) as Record<string, string>,
      body: init.body as string | undefined,
    };
    this.requests.push(request);
    if (!this.reachable) return Promise.reject(new TypeError("Failed to fetch"));
    const path = url.split("?")[0];
    if (path === "/api/jobs" && request.method === "POST") {
      if (this.createStatus !== 202) return Promise.resolve(this.json(this.createStatus, { detail: "Bad delay." }));
      const key = request.headers["Idempotency-Key"];
      const existing = this.jobs.find((j) => j.url.endsWith(`#${key}`));
      const job = existing ?? makeJob({ url: `/api/jobs/x#${key}` });
      if (!existing) this.jobs.unshift(job);
      return Promise.resolve(this.json(202, job));
    }
    if (path === "/api/jobs") {
      const etag = `"${this.jobs.map((j) => j.id + j.updated_at).join(",")}"`;
      if (request.headers["If-None-Match"] === etag) return Promise.resolve(new Response(null, { status: 304 }));
      return Promise.resolve(this.json(200, { results: this.jobs, next: null }, { ETag: etag }));
    }
    if (path === "/api/stats") {
      return Promise.resolve(this.json(200, { counts: { pending: this.jobs.length }, total: this.jobs.length }));
    }
    if (path === "/api/config") {
      return Promise.resolve(
        this.json(200, { min_delay: 5, max_delay: 300, delay_step: 5, photo_source: "demo", app_name: "Jobs" }),
      );
    }
    return Promise.resolve(this.json(404, { detail: "Not found." }));
  };

  private json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
    return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
  }
}

function setup(storage = new MemoryStorage()) {
  const server = new FakeServer();
  const sources: FakeEventSource[] = [];
  let controller: Controller | null = null;
  const client = new ApiClient({
    fetch: server.fetch as typeof fetch,
    retry: { random: () => 0 },
    onReachability: (ok) => controller?.connectivity.report(ok),
  });
  controller = new Controller({
    client,
    storage,
    createEventSource: (url) => {
      const source = new FakeEventSource(url);
      sources.push(source);
      return source;
    },
  });
  const stream = () => {
    const source = sources[sources.length - 1];
    if (!source) throw new Error("no stream");
    return source;
  };
  return { controller, server, stream, storage };
}

describe("Controller", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("loads the list and applies live events by id, newest update winning", async () => {
    const { controller, server, stream } = setup();
    const job = makeJob({ updated_at: "2024-05-01T12:00:00.000Z" });
    server.jobs = [job];
    controller.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(controller.getView()).toMatchObject({ listState: "ready", connection: "online" });
    expect(controller.getView().jobs.map((j) => j.id)).toEqual([job.id]);

    stream().open();
    stream().emit("job", { ...job, status: "completed", updated_at: "2024-05-01T12:00:31.000Z" }, "3");
    stream().emit("job", { ...job, status: "running", updated_at: "2024-05-01T12:00:30.000Z" }, "2");
    expect(controller.getView().jobs[0]?.status).toBe("completed");
    await vi.advanceTimersByTimeAsync(1000);
    expect(controller.getView().announcement?.text).toContain("is now completed");

    stream().emit("job-deleted", { id: job.id }, "4");
    expect(controller.getView().jobs).toEqual([]);
    controller.stop();
  });

  it("shows a create at once, keeps it while offline, and sends it once the server is back", async () => {
    const { controller, server, stream, storage } = setup();
    controller.start();
    await vi.advanceTimersByTimeAsync(1000);
    stream().open();
    server.reachable = false;

    controller.createJob(30);
    expect(controller.getView().pendingCreates).toHaveLength(1);
    expect(controller.getView().outboxCount).toBe(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(controller.getView().connection).toBe("offline");
    expect(controller.getView().pendingCreates[0]?.state).toBe("queued");
    expect(storage.data.size).toBe(1);

    await vi.advanceTimersByTimeAsync(5000);
    server.reachable = true;
    await vi.advanceTimersByTimeAsync(60_000);

    const view = controller.getView();
    expect(view.outboxCount).toBe(0);
    expect(view.pendingCreates).toEqual([]);
    expect(view.jobs).toHaveLength(1);
    expect(server.jobs).toHaveLength(1);
    const posts = server.requests.filter((r) => r.method === "POST");
    expect(posts.length).toBeGreaterThan(1);
    expect(new Set(posts.map((r) => r.headers["Idempotency-Key"])).size).toBe(1);
    expect(posts.every((r) => r.body === '{"delay_seconds":30}')).toBe(true);
    controller.stop();
  });

  it("sends creates left over from a previous page load", async () => {
    const first = setup();
    first.server.reachable = false;
    first.controller.start();
    first.controller.createJob(null);
    await vi.advanceTimersByTimeAsync(100);
    first.controller.stop();

    const second = setup(first.storage);
    expect(second.controller.getView().outboxCount).toBe(1);
    second.controller.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(second.controller.getView().outboxCount).toBe(0);
    expect(second.server.jobs).toHaveLength(1);
    const firstKey = first.server.requests.find((r) => r.method === "POST")?.headers["Idempotency-Key"];
    const secondKey = second.server.requests.find((r) => r.method === "POST")?.headers["Idempotency-Key"];
    expect(secondKey).toBe(firstKey);
    second.controller.stop();
  });

  it("shows the server's reason when a create is refused, and drops it", async () => {
    const { controller, server } = setup();
    server.createStatus = 400;
    controller.start();
    controller.createJob(7);
    await vi.advanceTimersByTimeAsync(1000);
    const view = controller.getView();
    expect(view.outboxCount).toBe(0);
    expect(view.pendingCreates).toMatchObject([{ state: "rejected", message: "Bad delay." }]);
    expect(view.notices[0]?.text).toContain("Bad delay.");
    expect(server.requests.filter((r) => r.method === "POST")).toHaveLength(1);
    controller.stop();
  });

  it("polls with If-None-Match when the stream is unavailable", async () => {
    const { controller, server } = setup();
    server.jobs = [makeJob()];
    controller.start();
    await vi.advanceTimersByTimeAsync(20_000);
    expect(controller.getView().live.mode).toBe("polling");
    const lists = server.requests.filter((r) => r.method === "GET" && r.url.startsWith("/api/jobs"));
    expect(lists.length).toBeGreaterThan(3);
    expect(lists.slice(1).every((r) => r.headers["If-None-Match"] !== undefined)).toBe(true);

    const added = makeJob();
    server.jobs = [added, ...server.jobs];
    await vi.advanceTimersByTimeAsync(5000);
    expect(controller.getView().jobs.map((j) => j.id)).toContain(added.id);
    controller.stop();
  });
});
