import { describe, expect, it } from "vitest";
import { ApiError, Http, NetworkError, isRetryable, parseRetryAfter, retryDelay } from "./http";

function http(respond: () => Promise<Response>) {
  const answers: boolean[] = [];
  const requests: RequestInit[] = [];
  const client = new Http({
    fetch: (async (_url: string, init: RequestInit) => {
      requests.push(init);
      return respond();
    }) as typeof fetch,
    onAnswer: (reachable) => answers.push(reachable),
    cookies: () => "a=1; csrftoken=tok%3D",
  });
  return { client, answers, requests };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

describe("Http", () => {
  it("counts an answer from the app as reachable, a proxy's page or no answer as not", async () => {
    const app = http(() => Promise.resolve(json(500, { detail: "Broken." })));
    await expect(app.client.get("/api/jobs")).rejects.toThrow("Broken.");
    const proxy = http(() => Promise.resolve(new Response("<html>", { status: 502, headers: { "Content-Type": "text/html" } })));
    await expect(proxy.client.get("/api/jobs")).rejects.toBeInstanceOf(ApiError);
    const down = http(() => Promise.reject(new TypeError("Failed to fetch")));
    await expect(down.client.get("/api/jobs")).rejects.toBeInstanceOf(NetworkError);
    expect([app.answers, proxy.answers, down.answers]).toEqual([[true], [false], [false]]);
  });

  it("sends If-None-Match and reads a 304 as no new data", async () => {
    const t = http(() => Promise.resolve(new Response(null, { status: 304, headers: { ETag: '"v1"' } })));
    expect(await t.client.get("/api/jobs", '"v1"')).toEqual({ data: null, etag: '"v1"' });
    expect(t.requests[0]?.headers).toMatchObject({ "If-None-Match": '"v1"' });
  });

  it("posts JSON with the CSRF token and the given headers", async () => {
    const t = http(() => Promise.resolve(json(202, { id: "x" })));
    expect(await t.client.post("/api/jobs", { delay_seconds: 5 }, { "Idempotency-Key": "k" })).toEqual({ id: "x" });
    expect(t.requests[0]?.headers).toMatchObject({ "X-CSRFToken": "tok=", "Idempotency-Key": "k" });
    expect(t.requests[0]?.body).toBe('{"delay_seconds":5}');
  });
});

describe("the retry policy", () => {
  it("retries what may succeed later, never what the server judged wrong", () => {
    for (const status of [408, 409, 425, 429, 500, 503]) expect(isRetryable(new ApiError(status, null, null))).toBe(true);
    for (const status of [400, 404, 422]) expect(isRetryable(new ApiError(status, null, null))).toBe(false);
    expect(isRetryable(new NetworkError())).toBe(true);
  });

  it("waits a random time under a doubling ceiling, capped, and at least what Retry-After says", () => {
    expect(retryDelay(0, null, () => 0.999)).toBe(499);
    expect(retryDelay(3, null, () => 0.999)).toBe(3996);
    expect(retryDelay(20, null, () => 0.999)).toBe(29_970);
    expect(retryDelay(0, null, () => 0)).toBe(0);
    expect(retryDelay(0, new ApiError(429, null, 7000), () => 0)).toBe(7000);
    expect(retryDelay(0, new ApiError(503, null, 10 ** 9), () => 0)).toBe(300_000);
  });

  it("reads Retry-After as seconds or as a date", () => {
    expect(parseRetryAfter("12")).toBe(12_000);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:10 GMT", Date.parse("Wed, 21 Oct 2015 07:28:00 GMT"))).toBe(10_000);
    expect(parseRetryAfter("soon")).toBeNull();
    expect(parseRetryAfter(null)).toBeNull();
  });
});
