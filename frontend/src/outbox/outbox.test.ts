import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { setupServices } from "../testing/fakeServer";
import { createJobKey, newCreate, OUTBOX_STORAGE_KEY, sendCreate } from "./outbox";

const posts = (requests: { method: string; headers: Record<string, string>; body: string | undefined }[]) =>
  requests.filter((r) => r.method === "POST");

describe("the outbox", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("sends a create with one Idempotency-Key however often it is retried", async () => {
    const { services, server, stream } = setupServices();
    await services.start();
    server.reachable = false;
    sendCreate(services.client, newCreate({ delay_seconds: 30 }));
    await vi.advanceTimersByTimeAsync(10_000);
    server.reachable = true;
    stream().open(); // the server answers again: paused creates resume
    await vi.advanceTimersByTimeAsync(60_000);
    expect(server.jobs).toHaveLength(1);
    const sent = posts(server.requests);
    expect(sent.length).toBeGreaterThan(1);
    expect(new Set(sent.map((r) => r.headers["Idempotency-Key"])).size).toBe(1);
    expect(services.client.isMutating({ mutationKey: createJobKey })).toBe(0);
    services.stop();
  });

  it("keeps a create across a reload and sends it with the same key", async () => {
    const first = setupServices();
    await first.services.start();
    first.server.reachable = false;
    sendCreate(first.services.client, newCreate({}));
    await vi.advanceTimersByTimeAsync(1000);
    expect(first.storage.getItem(OUTBOX_STORAGE_KEY)).toContain("pending");
    first.services.stop();

    const second = setupServices(first.storage);
    await second.services.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(second.server.jobs).toHaveLength(1);
    const firstKey = posts(first.server.requests)[0]?.headers["Idempotency-Key"];
    expect(posts(second.server.requests).map((r) => r.headers["Idempotency-Key"])).toEqual([firstKey]);
    second.services.stop();
  });

  it("sends creates one at a time, oldest first", async () => {
    const { services, server } = setupServices();
    await services.start();
    const creates = [newCreate({ delay_seconds: 5 }), newCreate({ delay_seconds: 10 })];
    for (const create of creates) sendCreate(services.client, create);
    await vi.advanceTimersByTimeAsync(1000);
    expect(posts(server.requests).map((r) => r.headers["Idempotency-Key"])).toEqual(creates.map((c) => c.key));
    services.stop();
  });

  it("does not retry a create the server refused, and keeps it to show", async () => {
    const { services, server } = setupServices();
    server.createStatus = 400;
    await services.start();
    sendCreate(services.client, newCreate({ delay_seconds: 7 }));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(posts(server.requests)).toHaveLength(1);
    const [refused] = services.client.getMutationCache().findAll({ mutationKey: createJobKey });
    expect(refused?.state).toMatchObject({ status: "error", error: { message: "Bad delay." } });
    services.stop();
  });
});

describe("creates left by the outbox before it was made of mutations", () => {
  it("are taken over and sent with their own keys", async () => {
    const { services, server, storage } = setupServices();
    storage.setItem("jobs.outbox.v1", JSON.stringify({ version: 1, entries: [{ key: "k-1", body: { delay_seconds: 5 }, createdAt: "2024-05-01T12:00:00.000Z", attempts: 2, lastError: null }] }));
    await services.start();
    await vi.waitFor(() => expect(server.jobs).toHaveLength(1));
    expect(posts(server.requests).map((r) => [r.headers["Idempotency-Key"], r.body])).toEqual([["k-1", '{"delay_seconds":5}']]);
    expect(storage.getItem("jobs.outbox.v1")).toBeNull();
    services.stop();
  });
});
