import { afterEach, describe, expect, it, vi } from "vitest";
import {
  backoffCeiling,
  fetchWithRetry,
  fullJitterDelay,
  isRetryableStatus,
  parseRetryAfter,
  retryDelay,
  type BackoffPolicy,
} from "./retry";

const policy: BackoffPolicy = { baseMs: 500, capMs: 30_000, maxRetryAfterMs: 300_000 };

function response(status: number, headers: Record<string, string> = {}): Response {
  return new Response(status === 204 || status === 304 ? null : "{}", { status, headers });
}

describe("backoff", () => {
  it("doubles the ceiling from the base up to the cap", () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => backoffCeiling(n, policy))).toEqual([
      500, 1000, 2000, 4000, 8000, 16000, 30000,
    ]);
    expect(backoffCeiling(60, policy)).toBe(30_000);
    expect(backoffCeiling(10_000, policy)).toBe(30_000);
  });

  it("draws a full-jitter wait anywhere between zero and the ceiling", () => {
    expect(fullJitterDelay(3, policy, () => 0)).toBe(0);
    expect(fullJitterDelay(3, policy, () => 0.5)).toBe(2000);
    const top = fullJitterDelay(3, policy, () => 0.999999);
    expect(top).toBeLessThan(4000);
    expect(top).toBeGreaterThanOrEqual(3999);
  });

  it("never exceeds the cap however many failures there were", () => {
    for (let attempt = 0; attempt < 200; attempt += 7) {
      for (const r of [0, 0.3, 0.9999999, 1]) {
        const delay = fullJitterDelay(attempt, policy, () => r);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(30_000);
      }
    }
  });

  it("spreads waits over the whole range with a real random source", () => {
    const delays = Array.from({ length: 2000 }, () => fullJitterDelay(4, policy));
    expect(Math.min(...delays)).toBeLessThan(800);
    expect(Math.max(...delays)).toBeGreaterThan(7200);
    expect(Math.max(...delays)).toBeLessThan(8000);
  });

  it("waits at least as long as Retry-After asks", () => {
    expect(retryDelay(0, 7000, policy, () => 0)).toBe(7000);
    expect(retryDelay(0, 7000, policy, () => 0.99)).toBe(7000);
    // A longer jittered wait is kept: Retry-After is a floor, not an exact time.
    expect(retryDelay(6, 1000, policy, () => 0.5)).toBe(15_000);
  });

  it("bounds an absurd Retry-After", () => {
    expect(retryDelay(0, 86_400_000, policy, () => 0)).toBe(300_000);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2024-05-01T12:00:00Z");

  it("reads delay-seconds", () => {
    expect(parseRetryAfter("3", now)).toBe(3000);
    expect(parseRetryAfter(" 120 ", now)).toBe(120_000);
    expect(parseRetryAfter("0", now)).toBe(0);
  });

  it("reads an HTTP date", () => {
    expect(parseRetryAfter("Wed, 01 May 2024 12:00:10 GMT", now)).toBe(10_000);
    expect(parseRetryAfter("Wed, 01 May 2024 11:00:00 GMT", now)).toBe(0);
  });

  it("ignores what it cannot read", () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter("", now)).toBeNull();
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter("-5", now)).toBeNull();
  });
});

describe("isRetryableStatus", () => {
  it("retries what may succeed later", () => {
    for (const status of [408, 409, 425, 429, 500, 502, 503, 504]) expect(isRetryableStatus(status)).toBe(true);
  });

  it("does not retry requests the server judged wrong", () => {
    for (const status of [400, 401, 403, 404, 405, 410, 413, 415, 422]) expect(isRetryableStatus(status)).toBe(false);
  });
});

describe("fetchWithRetry", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const noWait = () => Promise.resolve();

  it("retries a 503 and returns the eventual success", async () => {
    const attempt = vi
      .fn<(signal: AbortSignal) => Promise<Response>>()
      .mockResolvedValueOnce(response(503))
      .mockResolvedValueOnce(response(503))
      .mockResolvedValueOnce(response(200));
    const result = await fetchWithRetry(attempt, { sleep: noWait });
    expect(result.status).toBe(200);
    expect(attempt).toHaveBeenCalledTimes(3);
  });

  it.each([400, 404, 422])("does not retry a %i", async (status) => {
    const attempt = vi.fn(() => Promise.resolve(response(status)));
    const sleep = vi.fn(noWait);
    const result = await fetchWithRetry(attempt, { sleep });
    expect(result.status).toBe(status);
    expect(attempt).toHaveBeenCalledTimes(1);
    expect(sleep).not.toHaveBeenCalled();
  });

  it("honours Retry-After on 429, 503 and 409", async () => {
    const attempt = vi
      .fn<(signal: AbortSignal) => Promise<Response>>()
      .mockResolvedValueOnce(response(429, { "Retry-After": "4" }))
      .mockResolvedValueOnce(response(503, { "Retry-After": "2" }))
      .mockResolvedValueOnce(response(409, { "Retry-After": "1" }))
      .mockResolvedValueOnce(response(202));
    const waits: number[] = [];
    const result = await fetchWithRetry(attempt, {
      sleep: (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
      random: () => 0,
    });
    expect(result.status).toBe(202);
    expect(waits).toEqual([4000, 2000, 1000]);
  });

  it("uses growing jittered waits without Retry-After", async () => {
    const attempt = vi.fn(() => Promise.reject(new TypeError("Failed to fetch")));
    const waits: number[] = [];
    await expect(
      fetchWithRetry(attempt, {
        maxAttempts: 5,
        random: () => 0.999999,
        policy,
        sleep: (ms) => {
          waits.push(ms);
          return Promise.resolve();
        },
      }),
    ).rejects.toThrow("Failed to fetch");
    expect(attempt).toHaveBeenCalledTimes(5);
    expect(waits).toHaveLength(4);
    waits.forEach((ms, i) => {
      expect(ms).toBeLessThan(backoffCeiling(i, policy));
      expect(ms).toBeGreaterThan(backoffCeiling(i, policy) - 2);
    });
  });

  it("returns the last retryable response when attempts run out", async () => {
    const attempt = vi.fn(() => Promise.resolve(response(502)));
    const result = await fetchWithRetry(attempt, { maxAttempts: 3, sleep: noWait });
    expect(result.status).toBe(502);
    expect(attempt).toHaveBeenCalledTimes(3);
  });

  it("recovers from network errors", async () => {
    const attempt = vi
      .fn<(signal: AbortSignal) => Promise<Response>>()
      .mockRejectedValueOnce(new TypeError("Failed to fetch"))
      .mockResolvedValueOnce(response(200));
    const result = await fetchWithRetry(attempt, { sleep: noWait });
    expect(result.status).toBe(200);
  });

  it("stops waiting when aborted", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const attempt = vi.fn(() => Promise.resolve(response(503)));
    const pending = fetchWithRetry(attempt, { signal: controller.signal, maxAttempts: Infinity, random: () => 0.5 });
    const outcome = expect(pending).rejects.toMatchObject({ name: "AbortError" });
    await vi.advanceTimersByTimeAsync(100);
    controller.abort();
    await outcome;
    expect(attempt).toHaveBeenCalledTimes(1);
  });

  it("gives up on an attempt that hangs and tries again", async () => {
    vi.useFakeTimers();
    let calls = 0;
    const attempt = (signal: AbortSignal) => {
      calls += 1;
      if (calls === 1) {
        return new Promise<Response>((_, reject) => {
          signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
        });
      }
      return Promise.resolve(response(200));
    };
    const pending = fetchWithRetry(attempt, { attemptTimeoutMs: 1000, random: () => 0 });
    await vi.advanceTimersByTimeAsync(1001);
    await expect(pending).resolves.toMatchObject({ status: 200 });
    expect(calls).toBe(2);
  });
});
