import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MemoryStorage } from "../testing/memoryStorage";
import { DEFAULT_OUTBOX_KEY, Outbox, type OutboxEntry, type OutboxEvent, type SendOutcome } from "./outbox";

type Body = { delay_seconds?: number };
type Result = { id: string };
type Send = (entry: OutboxEntry<Body>) => Promise<SendOutcome<Result>>;

let keys = 0;
const newKey = () => `key-${++keys}`;
const offline: SendOutcome<Result> = { kind: "retry", retryAfterMs: null, message: "Cannot reach the server." };

function makeOutbox(storage: MemoryStorage, send: Send) {
  const outbox = new Outbox<Body, Result>({ storage, send, newKey, random: () => 0.5 });
  const events: OutboxEvent<Body, Result>[] = [];
  outbox.onEvent((event) => events.push(event));
  return { outbox, events };
}

function stored(storage: MemoryStorage): OutboxEntry<Body>[] {
  const raw = storage.getItem(DEFAULT_OUTBOX_KEY);
  return raw === null ? [] : (JSON.parse(raw) as { entries: OutboxEntry<Body>[] }).entries;
}

/** A send whose calls are recorded and answered one by one. */
function scriptedSend(...outcomes: SendOutcome<Result>[]) {
  const calls: OutboxEntry<Body>[] = [];
  const send = vi.fn((entry: OutboxEntry<Body>) => {
    calls.push(entry);
    return Promise.resolve(outcomes.shift() ?? offline);
  });
  return { send, calls };
}

describe("Outbox", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("stores a create before sending it", async () => {
    const storage = new MemoryStorage();
    const seen: OutboxEntry<Body>[][] = [];
    const { outbox } = makeOutbox(storage, () => {
      seen.push(stored(storage));
      return Promise.resolve({ kind: "sent", result: { id: "job-1" } });
    });
    outbox.add({ delay_seconds: 30 });
    await vi.runAllTimersAsync();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject([{ body: { delay_seconds: 30 } }]);
  });

  it("reuses the same Idempotency-Key for every attempt of one create", async () => {
    const storage = new MemoryStorage();
    const { send, calls } = scriptedSend(
      offline,
      { kind: "retry", retryAfterMs: 2000, message: "still processing" },
      offline,
      { kind: "sent", result: { id: "job-1" } },
    );
    const { outbox, events } = makeOutbox(storage, send);
    const entry = outbox.add({});
    await vi.runAllTimersAsync();
    expect(calls.map((c) => c.key)).toEqual([entry.key, entry.key, entry.key, entry.key]);
    expect(calls.map((c) => c.attempts)).toEqual([1, 2, 3, 4]);
    expect(events).toMatchObject([{ type: "sent", result: { id: "job-1" } }]);
    expect(stored(storage)).toEqual([]);
    expect(outbox.getState().entries).toEqual([]);
  });

  it("keeps a failing create across a reload and sends it from the new page", async () => {
    const storage = new MemoryStorage();
    const first = makeOutbox(storage, () => Promise.resolve(offline));
    const entry = first.outbox.add({ delay_seconds: 45 });
    await vi.advanceTimersByTimeAsync(0);
    first.outbox.dispose(); // the page goes away

    expect(stored(storage)).toMatchObject([{ key: entry.key, body: { delay_seconds: 45 }, attempts: 1 }]);

    const { send, calls } = scriptedSend({ kind: "sent", result: { id: "job-9" } });
    const second = makeOutbox(storage, send);
    expect(second.outbox.getState().entries.map((e) => e.key)).toEqual([entry.key]);
    await second.outbox.flush();
    expect(calls.map((c) => c.key)).toEqual([entry.key]);
    expect(second.events).toMatchObject([{ type: "sent", entry: { key: entry.key }, result: { id: "job-9" } }]);

    const { send: thirdSend } = scriptedSend();
    const third = makeOutbox(storage, thirdSend);
    await third.outbox.flush();
    expect(third.outbox.getState().entries).toEqual([]);
    expect(thirdSend).not.toHaveBeenCalled();
  });

  it("sends each entry exactly once, in order, once they succeed", async () => {
    const storage = new MemoryStorage();
    const { send, calls } = scriptedSend(
      { kind: "sent", result: { id: "a" } },
      { kind: "sent", result: { id: "b" } },
      { kind: "sent", result: { id: "c" } },
    );
    const { outbox, events } = makeOutbox(storage, send);
    const a = outbox.add({});
    const b = outbox.add({ delay_seconds: 5 });
    const c = outbox.add({ delay_seconds: 10 });
    await vi.runAllTimersAsync();
    await outbox.flush();
    outbox.wake();
    await vi.runAllTimersAsync();
    expect(calls.map((e) => e.key)).toEqual([a.key, b.key, c.key]);
    expect(events.map((e) => e.type)).toEqual(["sent", "sent", "sent"]);
  });

  it("never has one entry in flight twice, however often it is flushed", async () => {
    const storage = new MemoryStorage();
    let resolve: (outcome: SendOutcome<Result>) => void = () => undefined;
    const send = vi.fn(() => new Promise<SendOutcome<Result>>((r) => (resolve = r)));
    const { outbox } = makeOutbox(storage, send);
    outbox.add({});
    void outbox.flush();
    void outbox.flush();
    outbox.wake();
    await vi.advanceTimersByTimeAsync(0);
    expect(send).toHaveBeenCalledTimes(1);
    expect(outbox.getState().sendingKey).not.toBeNull();
    resolve({ kind: "sent", result: { id: "x" } });
    await vi.runAllTimersAsync();
    expect(send).toHaveBeenCalledTimes(1);
    expect(outbox.getState().entries).toEqual([]);
  });

  it.each([400, 404, 422])("drops a create the server rejects with %i and reports it", async (status) => {
    const storage = new MemoryStorage();
    const { send } = scriptedSend({ kind: "rejected", status, message: "delay_seconds must be a multiple of 5" });
    const { outbox, events } = makeOutbox(storage, send);
    outbox.add({ delay_seconds: 7 });
    await vi.runAllTimersAsync();
    expect(send).toHaveBeenCalledTimes(1);
    expect(stored(storage)).toEqual([]);
    expect(events).toMatchObject([{ type: "rejected", status, message: "delay_seconds must be a multiple of 5" }]);
  });

  it("keeps retrying while the server is unreachable, with capped backoff", async () => {
    const storage = new MemoryStorage();
    const send = vi.fn(() => Promise.resolve(offline));
    const outbox = new Outbox<Body, Result>({ storage, send, newKey, random: () => 0.999 });
    outbox.add({});
    await vi.advanceTimersByTimeAsync(0);
    const gaps: number[] = [];
    for (let i = 0; i < 12; i += 1) {
      const retryAt = outbox.getState().retryAt;
      expect(retryAt).not.toBeNull();
      gaps.push((retryAt ?? 0) - Date.now());
      await vi.advanceTimersByTimeAsync((retryAt ?? 0) - Date.now());
    }
    expect(send).toHaveBeenCalledTimes(13);
    expect(gaps.slice(0, 4)).toEqual([499, 999, 1998, 3996]);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(30_000);
    expect(stored(storage)).toHaveLength(1);
  });

  it("waits as long as Retry-After says before trying again", async () => {
    const storage = new MemoryStorage();
    const { send } = scriptedSend(
      { kind: "retry", retryAfterMs: 10_000, message: "in progress" },
      { kind: "sent", result: { id: "j" } },
    );
    const { outbox } = makeOutbox(storage, send);
    outbox.add({});
    await vi.advanceTimersByTimeAsync(9_999);
    expect(send).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(send).toHaveBeenCalledTimes(2);
  });

  it("tries again at once when woken (the server is back)", async () => {
    const storage = new MemoryStorage();
    const { send } = scriptedSend(
      { kind: "retry", retryAfterMs: 60_000, message: "offline" },
      { kind: "sent", result: { id: "j" } },
    );
    const { outbox } = makeOutbox(storage, send);
    outbox.add({});
    await vi.advanceTimersByTimeAsync(10);
    expect(send).toHaveBeenCalledTimes(1);
    outbox.wake();
    await vi.advanceTimersByTimeAsync(0);
    expect(send).toHaveBeenCalledTimes(2);
    expect(outbox.getState().entries).toEqual([]);
  });

  it("treats a send that throws as worth retrying", async () => {
    const storage = new MemoryStorage();
    const send = vi
      .fn<Send>()
      .mockRejectedValueOnce(new Error("boom"))
      .mockResolvedValueOnce({ kind: "sent", result: { id: "j" } });
    const { outbox } = makeOutbox(storage, send);
    outbox.add({});
    await vi.advanceTimersByTimeAsync(0);
    expect(outbox.getState().entries[0]?.lastError).toBe("boom");
    await vi.runAllTimersAsync();
    expect(send).toHaveBeenCalledTimes(2);
    expect(outbox.getState().entries).toEqual([]);
  });

  it("ignores unreadable storage contents", () => {
    const storage = new MemoryStorage();
    storage.setItem(DEFAULT_OUTBOX_KEY, "{not json");
    expect(makeOutbox(storage, scriptedSend().send).outbox.getState().entries).toEqual([]);
    storage.setItem(DEFAULT_OUTBOX_KEY, JSON.stringify({ entries: [{ nonsense: true }, null] }));
    expect(makeOutbox(storage, scriptedSend().send).outbox.getState().entries).toEqual([]);
  });

  it("sees an entry another tab already sent and does not send it again", async () => {
    const storage = new MemoryStorage();
    const first = makeOutbox(storage, () => Promise.resolve(offline));
    first.outbox.add({});
    await vi.advanceTimersByTimeAsync(0);
    // Another tab sends it and empties the shared storage.
    storage.setItem(DEFAULT_OUTBOX_KEY, JSON.stringify({ version: 1, entries: [] }));
    const send = vi.fn(() => Promise.resolve(offline));
    const second = makeOutbox(storage, send);
    first.outbox.reloadFromStorage();
    expect(first.outbox.getState().entries).toEqual([]);
    await second.outbox.flush();
    expect(send).not.toHaveBeenCalled();
  });

  it("works without storage, in memory", async () => {
    const { send } = scriptedSend(offline, { kind: "sent", result: { id: "j" } });
    const outbox = new Outbox<Body, Result>({ storage: null, send, newKey, random: () => 0 });
    outbox.add({});
    await vi.runAllTimersAsync();
    expect(send).toHaveBeenCalledTimes(2);
    expect(outbox.getState().entries).toEqual([]);
  });
});
