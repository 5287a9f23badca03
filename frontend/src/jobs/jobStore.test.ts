import { describe, expect, it } from "vitest";
import { makeJob } from "../testing/jobs";
import { JobStore } from "./jobStore";

const at = (seconds: number) => new Date(Date.UTC(2024, 4, 1, 12, 0, seconds)).toISOString();

describe("JobStore", () => {
  it("keeps the copy with the newest updated_at, whatever the arrival order", () => {
    const store = new JobStore();
    const pending = makeJob({ id: "01A", status: "pending", updated_at: at(0) });
    const running = { ...pending, status: "running" as const, updated_at: at(30) };
    const completed = { ...pending, status: "completed" as const, updated_at: at(31) };

    expect(store.upsert(pending)?.previous).toBeUndefined();
    expect(store.upsert(completed)?.previous).toEqual(pending);
    expect(store.upsert(running)).toBeNull(); // late, stale event
    expect(store.get("01A")?.status).toBe("completed");
  });

  it("compares timestamps, not strings", () => {
    const store = new JobStore();
    const job = makeJob({ id: "01A", updated_at: "2024-05-01T12:00:09.900Z" });
    store.upsert(job);
    // Same instant written differently: not older, so taken (and unchanged status is no change).
    expect(store.upsert({ ...job, status: "running", updated_at: "2024-05-01T12:00:10Z" })).not.toBeNull();
    expect(store.upsert({ ...job, status: "failed", updated_at: "2024-05-01T12:00:09.950Z" })).toBeNull();
  });

  it("lists newest first by id", () => {
    const store = new JobStore();
    store.upsertMany([makeJob({ id: "01B" }), makeJob({ id: "01D" }), makeJob({ id: "01A" }), makeJob({ id: "01C" })]);
    expect(store.all().map((j) => j.id)).toEqual(["01D", "01C", "01B", "01A"]);
  });

  it("does not bring back a deleted job from a stale copy", () => {
    const store = new JobStore();
    const job = makeJob({ id: "01A" });
    store.upsert(job);
    store.remove("01A");
    expect(store.upsert({ ...job, updated_at: at(50) })).toBeNull();
    expect(store.all()).toEqual([]);
  });

  it("drops jobs a snapshot proves gone, and only those", () => {
    const store = new JobStore();
    store.upsertMany(["01A", "01B", "01C", "01D", "01E"].map((id) => makeJob({ id })));
    const knownBefore = store.ids();
    store.upsert(makeJob({ id: "01F" })); // arrived while the request was in flight
    // Page of 2 (it had a next link): covers 01D and newer.
    store.applySnapshot([makeJob({ id: "01E" }), makeJob({ id: "01D" })], {
      knownBefore,
      statuses: [],
      coversFrom: "01D",
    });
    expect(store.all().map((j) => j.id)).toEqual(["01F", "01E", "01D", "01C", "01B", "01A"]);

    // A complete listing without 01B: it was deleted.
    store.applySnapshot(
      ["01F", "01E", "01D", "01C", "01A"].map((id) => makeJob({ id })),
      { knownBefore: store.ids(), statuses: [], coversFrom: null },
    );
    expect(store.all().map((j) => j.id)).toEqual(["01F", "01E", "01D", "01C", "01A"]);
  });

  it("only judges jobs of the filtered statuses missing from a filtered snapshot", () => {
    const store = new JobStore();
    store.upsertMany([makeJob({ id: "01A", status: "failed" }), makeJob({ id: "01B", status: "completed" })]);
    store.applySnapshot([], { knownBefore: store.ids(), statuses: ["failed"], coversFrom: null });
    expect(store.all().map((j) => j.id)).toEqual(["01B"]);
  });

  it("notifies subscribers once per batch", () => {
    const store = new JobStore();
    let calls = 0;
    store.subscribe(() => (calls += 1));
    store.upsertMany([makeJob(), makeJob(), { not: "a job" }]);
    expect(calls).toBe(1);
    expect(store.all()).toHaveLength(2);
  });
});
