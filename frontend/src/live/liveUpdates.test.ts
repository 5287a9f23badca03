import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Job } from "../api/types";
import { FakeEventSource } from "../testing/fakeEventSource";
import { makeJob } from "../testing/jobs";
import { CLOSED, LiveUpdates } from "./liveUpdates";

function setup() {
  const sources: FakeEventSource[] = [];
  const jobs: Job[] = [];
  const calls = { open: 0, reset: 0, deleted: [] as string[] };
  const live = new LiveUpdates({
    createEventSource: (url) => {
      const source = new FakeEventSource(url);
      sources.push(source);
      return source;
    },
    onJob: (job) => jobs.push(job),
    onDeleted: (id) => calls.deleted.push(id),
    onReset: () => (calls.reset += 1),
    onOpen: () => (calls.open += 1),
  });
  const current = () => sources.at(-1) as FakeEventSource;
  return { live, sources, current, jobs, calls };
}

describe("LiveUpdates", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("passes on jobs, deletions and resets, and ignores malformed events", () => {
    const t = setup();
    t.live.start();
    t.current().open();
    const job = makeJob();
    t.current().emit("job", job, "1");
    t.current().emit("job", "{not json", "2");
    t.current().emit("job", { id: 5 }, "3");
    t.current().emit("job-deleted", { id: job.id }, "4");
    t.current().emit("reset", {}, "5");
    expect(t.jobs).toEqual([job]);
    expect(t.calls).toMatchObject({ deleted: [job.id], reset: 1 });
  });

  it("reconciles after every opening, a reconnect with no event id to resume from included", () => {
    // The server restarted before the stream carried any event: the browser
    // reconnects without Last-Event-ID and the server starts it from "now".
    const t = setup();
    t.live.start();
    t.current().open();
    t.current().fail();
    expect(t.live.getMode()).toBe("connecting");
    t.current().open();
    expect(t.sources).toHaveLength(1);
    expect(t.calls.open).toBe(2);
    expect(t.live.getMode()).toBe("stream");
  });

  it("polls when the stream is not open in time, and goes back to it when it opens", () => {
    const t = setup();
    t.live.start();
    vi.advanceTimersByTime(4999);
    expect(t.live.getMode()).toBe("connecting");
    vi.advanceTimersByTime(1);
    expect(t.live.getMode()).toBe("polling");
    t.current().open();
    expect(t.live.getMode()).toBe("stream");
  });

  it("polls after three errors in a row", () => {
    const t = setup();
    t.live.start();
    t.current().open();
    t.current().fail();
    t.current().fail();
    expect(t.live.getMode()).toBe("connecting");
    t.current().fail();
    expect(t.live.getMode()).toBe("polling");
  });

  it("opens a new EventSource after a backoff when the browser gives up on one, or at once when nudged", () => {
    const t = setup();
    t.live.start();
    t.current().fail(CLOSED);
    expect(t.sources[0]?.closed).toBe(true);
    expect(t.sources).toHaveLength(1);
    t.live.nudge();
    expect(t.sources).toHaveLength(2);
    t.current().fail(CLOSED);
    vi.advanceTimersByTime(30_000);
    expect(t.sources).toHaveLength(3);
  });

  it("replaces a stream that looks open when the server cannot be reached", () => {
    const t = setup();
    t.live.start();
    t.current().open();
    t.live.abandon();
    expect(t.sources[0]?.closed).toBe(true);
    expect(t.live.getMode()).toBe("polling");
    t.sources[0]?.emit("job", makeJob(), "9"); // a late event of the old one is ignored
    expect(t.jobs).toEqual([]);
    vi.advanceTimersByTime(30_000);
    expect(t.sources).toHaveLength(2);
  });
});
