import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Job } from "../api/types";
import { FakeEventSource } from "../testing/fakeEventSource";
import { makeJob } from "../testing/jobs";
import { CLOSED, LiveUpdates, type LiveHandlers, type RefreshResult } from "./liveUpdates";

function setup(options: { refresh?: () => Promise<RefreshResult> } = {}) {
  const sources: FakeEventSource[] = [];
  const jobs: Job[] = [];
  const deleted: string[] = [];
  let resets = 0;
  const handlers: LiveHandlers = {
    onJob: (job) => jobs.push(job),
    onDeleted: (id) => deleted.push(id),
    onReset: () => (resets += 1),
  };
  const refresh = vi.fn(options.refresh ?? (() => Promise.resolve<RefreshResult>("unchanged")));
  const live = new LiveUpdates({
    createEventSource: (url) => {
      const source = new FakeEventSource(url);
      sources.push(source);
      return source;
    },
    refresh,
    handlers,
    random: () => 0.5,
    pollIntervalMs: 3000,
    fallbackAfterMs: 5000,
    maxStreamErrors: 3,
    safetyRefreshMs: 30_000,
  });
  const current = () => {
    const source = sources[sources.length - 1];
    if (!source) throw new Error("no EventSource was created");
    return source;
  };
  return { live, sources, current, jobs, deleted, refresh, resets: () => resets };
}

describe("LiveUpdates", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("passes job events on and tracks the last event id", () => {
    const t = setup();
    t.live.start();
    t.current().open();
    const job = makeJob({ status: "running" });
    t.current().emit("job", job, "41");
    t.current().emit("job", makeJob(), "42");
    expect(t.current().url).toBe("/api/events");
    expect(t.jobs[0]).toEqual(job);
    expect(t.jobs).toHaveLength(2);
    expect(t.live.lastEventId).toBe("42");
    expect(t.live.getStatus()).toMatchObject({ mode: "stream", streamOpen: true, lastEventId: "42" });
  });

  it("passes deletions and resets on", () => {
    const t = setup();
    t.live.start();
    t.current().open();
    t.current().emit("job-deleted", { id: "01ABC" }, "7");
    t.current().emit("reset", {}, "8");
    expect(t.deleted).toEqual(["01ABC"]);
    expect(t.resets()).toBe(1);
    expect(t.live.lastEventId).toBe("8");
  });

  it("ignores malformed events", () => {
    const t = setup();
    t.live.start();
    t.current().open();
    t.current().emit("job", "{not json", "1");
    t.current().emit("job", { id: 5 }, "2");
    t.current().emit("job-deleted", { nope: true }, "3");
    expect(t.jobs).toEqual([]);
    expect(t.deleted).toEqual([]);
  });

  it("keeps one EventSource while the browser reconnects it, and reconciles after every opening", () => {
    const t = setup();
    t.live.start();
    t.current().open();
    expect(t.refresh).toHaveBeenCalledTimes(1); // catch-up after the first opening
    t.current().emit("job", makeJob(), "10");
    t.current().fail(); // CONNECTING: the browser retries with Last-Event-ID: 10
    t.current().open();
    expect(t.sources).toHaveLength(1);
    expect(t.refresh).toHaveBeenCalledTimes(2);
    expect(t.live.lastEventId).toBe("10");
  });

  it("refetches after a reconnect that had no event id to resume from", () => {
    // The server restarted before the stream carried any event: the browser
    // reconnects without Last-Event-ID and the server starts it from "now".
    const t = setup();
    t.live.start();
    t.current().open();
    t.current().fail();
    t.current().open();
    expect(t.live.lastEventId).toBeNull();
    expect(t.refresh).toHaveBeenCalledTimes(2);
  });

  it("does not let the opening's refresh join one sent before the opening", async () => {
    let answer: (result: RefreshResult) => void = () => undefined;
    const t = setup({ refresh: () => new Promise<RefreshResult>((resolve) => (answer = resolve)) });
    t.live.start();
    await vi.advanceTimersByTimeAsync(5000); // polling: a refresh is in flight
    expect(t.refresh).toHaveBeenCalledTimes(1);
    t.current().open();
    expect(t.refresh).toHaveBeenCalledTimes(2);
    answer("unchanged");
  });

  it("falls back to polling when the stream does not open in time, and back when it opens", async () => {
    const t = setup();
    t.live.start();
    await vi.advanceTimersByTimeAsync(4999);
    expect(t.refresh).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(t.live.getStatus().mode).toBe("polling");
    expect(t.refresh).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(3000);
    expect(t.refresh).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(3000);
    expect(t.refresh).toHaveBeenCalledTimes(3);

    t.current().open();
    expect(t.live.getStatus().mode).toBe("stream");
    const afterOpen = t.refresh.mock.calls.length;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(t.refresh).toHaveBeenCalledTimes(afterOpen);
  });

  it("falls back to polling after repeated stream errors", async () => {
    const t = setup();
    t.live.start();
    t.current().open();
    await vi.advanceTimersByTimeAsync(0);
    t.current().fail();
    t.current().fail();
    expect(t.live.getStatus().mode).toBe("stream");
    t.current().fail();
    expect(t.live.getStatus()).toMatchObject({ mode: "polling", streamOpen: false });
    await vi.advanceTimersByTimeAsync(0);
    expect(t.refresh).toHaveBeenCalledTimes(2);
  });

  it("falls back to polling when a broken stream does not come back within the grace period", async () => {
    const t = setup();
    t.live.start();
    t.current().open();
    t.current().fail();
    await vi.advanceTimersByTimeAsync(5000);
    expect(t.live.getStatus().mode).toBe("polling");
  });

  it("opens a new EventSource after the browser gave up, and catches up when it opens", async () => {
    const t = setup();
    t.live.start();
    t.current().open();
    t.current().emit("job", makeJob(), "5");
    const first = t.current();
    first.fail(CLOSED);
    expect(first.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.sources).toHaveLength(2);
    t.refresh.mockClear();
    t.current().open();
    expect(t.refresh).toHaveBeenCalledTimes(1);
    expect(t.live.lastEventId).toBe("5");
    // Events of the abandoned instance are not taken any more.
    first.emit("job", makeJob(), "99");
    expect(t.jobs).toHaveLength(1);
  });

  it("backs off polling while the server is unreachable", async () => {
    const t = setup({ refresh: () => Promise.reject(new Error("offline")) });
    t.live.start();
    t.current().fail();
    t.current().fail();
    t.current().fail();
    await vi.advanceTimersByTimeAsync(0);
    const times: number[] = [];
    t.refresh.mockImplementation(() => {
      times.push(Date.now());
      return Promise.reject(new Error("offline"));
    });
    await vi.advanceTimersByTimeAsync(120_000);
    const gaps = times.slice(1).map((time, i) => time - (times[i] ?? 0));
    expect(gaps.length).toBeGreaterThan(3);
    expect(gaps.every((gap) => gap >= 3000 && gap <= 30_000)).toBe(true);
    expect(gaps[gaps.length - 1]).toBeGreaterThan(gaps[0] ?? 0);
  });

  it("polls at once when nudged", async () => {
    const t = setup();
    t.live.start();
    await vi.advanceTimersByTimeAsync(5000);
    t.refresh.mockClear();
    t.live.nudge();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.refresh).toHaveBeenCalledTimes(1);
  });

  it("replaces an open stream that went silent when a safety refresh fails", async () => {
    const t = setup();
    t.live.start();
    t.current().open();
    t.refresh.mockImplementation(() => Promise.reject(new Error("offline")));
    await vi.advanceTimersByTimeAsync(30_000);
    expect(t.live.getStatus()).toMatchObject({ mode: "polling", streamOpen: false });
    expect(t.sources[0]?.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.sources).toHaveLength(2);
  });

  it("stops everything on stop()", async () => {
    const t = setup();
    t.live.start();
    await vi.advanceTimersByTimeAsync(5000);
    t.live.stop();
    t.refresh.mockClear();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.refresh).not.toHaveBeenCalled();
    expect(t.sources[0]?.closed).toBe(true);
  });
});
