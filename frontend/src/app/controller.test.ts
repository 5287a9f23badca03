import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { setupController as setup } from "../testing/fakeServer";
import { makeJob } from "../testing/jobs";

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

  it("reloads the list when the server cannot replay what was missed", async () => {
    const { controller, server, stream } = setup();
    const kept = makeJob();
    const gone = makeJob();
    server.jobs = [gone, kept];
    controller.start();
    await vi.advanceTimersByTimeAsync(1000);
    stream().open();
    await vi.advanceTimersByTimeAsync(100);
    expect(controller.getView().jobs).toHaveLength(2);

    const added = makeJob({ status: "completed" });
    server.jobs = [added, kept];
    stream().emit("reset", {}, "900");
    await vi.advanceTimersByTimeAsync(100);
    expect(controller.getView().jobs.map((j) => j.id)).toEqual([added.id, kept.id]);
    controller.stop();
  });

  it("never takes a job back in time when the list reloaded after a reset answers late", async () => {
    const { controller, server, stream } = setup();
    const job = makeJob({ updated_at: "2024-05-01T12:00:00.000Z" });
    server.jobs = [job];
    controller.start();
    await vi.advanceTimersByTimeAsync(1000);
    stream().open();
    await vi.advanceTimersByTimeAsync(100);

    stream().emit("reset", {}, "900");
    // The list is on its way with the pending copy when the event says completed.
    stream().emit("job", { ...job, status: "completed", updated_at: "2024-05-01T12:00:31.000Z" }, "901");
    await vi.advanceTimersByTimeAsync(100);
    expect(controller.getView().jobs.map((j) => j.status)).toEqual(["completed"]);
    controller.stop();
  });
});
