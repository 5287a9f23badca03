import { describe, expect, it, vi } from "vitest";
import { makeJob } from "../testing/jobs";
import { ApiClient, ApiError, NetworkError, jobsPath } from "./client";

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const type = status >= 400 ? "application/problem+json" : "application/json";
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": type, ...headers } });
}

function client(fetchImpl: (url: string, init: RequestInit) => Promise<Response>, extra = {}) {
  const reach: boolean[] = [];
  const api = new ApiClient({
    fetch: fetchImpl as typeof fetch,
    retry: { sleep: () => Promise.resolve(), random: () => 0 },
    onReachability: (ok) => reach.push(ok),
    cookies: () => "other=1; csrftoken=abc%3D123",
    ...extra,
  });
  return { api, reach };
}

describe("ApiClient.createJobAttempt", () => {
  it("sends the body with the Idempotency-Key and CSRF token, and returns the job", async () => {
    const job = makeJob();
    const fetchImpl = vi.fn((_url: string, _init: RequestInit) => Promise.resolve(json(202, job, { Location: job.url })));
    const { api } = client(fetchImpl);
    const outcome = await api.createJobAttempt({ delay_seconds: 30 }, "key-1");
    expect(outcome).toEqual({ kind: "sent", result: job });
    const [url, init] = fetchImpl.mock.calls[0] ?? [];
    expect(url).toBe("/api/jobs");
    expect(init?.method).toBe("POST");
    expect(init?.body).toBe('{"delay_seconds":30}');
    expect(init?.headers).toMatchObject({ "Idempotency-Key": "key-1", "X-CSRFToken": "abc=123" });
  });

  it("makes exactly one attempt (the outbox owns the retries)", async () => {
    const fetchImpl = vi.fn(() => Promise.resolve(json(503, { detail: "Busy" }, { "Retry-After": "3" })));
    const { api } = client(fetchImpl);
    expect(await api.createJobAttempt({}, "k")).toEqual({ kind: "retry", retryAfterMs: 3000, message: "Busy" });
    expect(fetchImpl).toHaveBeenCalledTimes(1);
  });

  it("asks to retry later when the same key is still being processed (409)", async () => {
    const { api } = client(() => Promise.resolve(json(409, { detail: "In progress" }, { "Retry-After": "1" })));
    expect(await api.createJobAttempt({}, "k")).toMatchObject({ kind: "retry", retryAfterMs: 1000 });
  });

  it.each([
    [400, "delay_seconds must be between 5 and 300."],
    [422, "This Idempotency-Key was used with a different request."],
  ])("reports a %i as rejected with the problem's detail", async (status, detail) => {
    const { api } = client(() => Promise.resolve(json(status, { title: "Bad", status, detail })));
    expect(await api.createJobAttempt({ delay_seconds: 1 }, "k")).toEqual({ kind: "rejected", status, message: detail });
  });

  it("asks to retry when the server cannot be reached", async () => {
    const { api, reach } = client(() => Promise.reject(new TypeError("Failed to fetch")));
    expect(await api.createJobAttempt({}, "k")).toMatchObject({ kind: "retry", retryAfterMs: null });
    expect(reach).toEqual([false]);
  });
});

describe("ApiClient GET requests", () => {
  it("sends If-None-Match and understands 304", async () => {
    const fetchImpl = vi.fn((_url: string, _init: RequestInit) =>
      Promise.resolve(new Response(null, { status: 304, headers: { ETag: '"v1"' } })),
    );
    const { api } = client(fetchImpl);
    const result = await api.listJobs({ statuses: ["pending", "running"], limit: 50 }, '"v1"');
    expect(result).toEqual({ notModified: true, etag: '"v1"' });
    const [url, init] = fetchImpl.mock.calls[0] ?? [];
    expect(url).toBe("/api/jobs?limit=50&status=pending,running");
    expect(init?.headers).toMatchObject({ "If-None-Match": '"v1"' });
  });

  it("returns the page and its ETag", async () => {
    const page = { results: [makeJob()], next: null };
    const { api, reach } = client(() => Promise.resolve(json(200, page, { ETag: '"v2"' })));
    expect(await api.listJobs({})).toEqual({ notModified: false, data: page, etag: '"v2"' });
    expect(reach).toEqual([true]);
  });

  it("retries transient failures", async () => {
    const fetchImpl = vi
      .fn<(url: string, init: RequestInit) => Promise<Response>>()
      .mockRejectedValueOnce(new TypeError("Failed to fetch"))
      .mockResolvedValueOnce(json(503, { detail: "Starting" }))
      .mockResolvedValueOnce(json(200, { counts: {}, total: 0 }));
    const { api, reach } = client(fetchImpl);
    await expect(api.getStats()).resolves.toEqual({ counts: {}, total: 0 });
    expect(fetchImpl).toHaveBeenCalledTimes(3);
    expect(reach).toEqual([false, true, true]);
  });

  it("does not retry a 404 and shows its detail", async () => {
    const fetchImpl = vi.fn(() => Promise.resolve(json(404, { title: "Not found", detail: "No job with that id." })));
    const { api } = client(fetchImpl);
    const error = await api.getJob("01X").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).message).toBe("No job with that id.");
    expect(fetchImpl).toHaveBeenCalledTimes(1);
  });

  it("reports a network failure as such after retrying", async () => {
    const fetchImpl = vi.fn(() => Promise.reject(new TypeError("Failed to fetch")));
    const { api } = client(fetchImpl);
    await expect(api.getConfig({ maxAttempts: 2 })).rejects.toBeInstanceOf(NetworkError);
    expect(fetchImpl).toHaveBeenCalledTimes(2);
  });

  it("counts a proxy's HTML 502 as unreachable, the app's JSON 503 as reachable", async () => {
    const fetchImpl = vi
      .fn<(url: string, init: RequestInit) => Promise<Response>>()
      .mockResolvedValueOnce(new Response("<html>Bad gateway</html>", { status: 502, headers: { "Content-Type": "text/html" } }))
      .mockResolvedValueOnce(json(503, { detail: "Unhealthy" }))
      .mockResolvedValueOnce(json(200, { counts: {}, total: 0 }));
    const { api, reach } = client(fetchImpl);
    await api.getStats();
    expect(reach).toEqual([false, true, true]);
  });

  it("follows a next link on the same origin", () => {
    expect(jobsPath({ next: "http://example.test/api/jobs?cursor=abc&limit=50" })).toBe("/api/jobs?cursor=abc&limit=50");
    expect(jobsPath({ next: "/api/jobs?cursor=xyz" })).toBe("/api/jobs?cursor=xyz");
    expect(jobsPath({})).toBe("/api/jobs?limit=50");
  });
});
