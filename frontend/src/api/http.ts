/**
 * The one place that speaks HTTP to the back end, and the retry policy of
 * queries and creates. Every attempt tells `onAnswer` whether the app
 * answered, however it answered (a proxy's HTML 502 is not the app).
 */
import type { Problem } from "./types";

/** The server answered with an error (problem+json when it comes from the app). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    problem: Problem | null,
    readonly retryAfterMs: number | null = null,
  ) {
    super(problem?.detail ?? problem?.title ?? (status >= 500 ? `The server had a problem (HTTP ${status}).` : `The request failed (HTTP ${status}).`));
  }
}

/** No answer at all: the connection failed or timed out. */
export class NetworkError extends Error {}

export interface HttpOptions {
  fetch?: typeof fetch;
  onAnswer?: (reachable: boolean) => void;
  /** The server's Date header and the local time it arrived. */
  onServerDate?: (serverMs: number, localMs: number) => void;
  /** Where the CSRF token is read from (document.cookie in the page). */
  cookies?: () => string;
}

/** A conditional GET's answer: `data` is null on a 304. */
export type Answer<T> = { data: T | null; etag: string | null };

// A hung connection counts as a failed attempt after this long.
const ATTEMPT_TIMEOUT_MS = 20_000;

export class Http {
  constructor(private readonly options: HttpOptions = {}) {}

  /** GET, with If-None-Match when an ETag is given. */
  async get<T>(path: string, etag: string | null = null, signal?: AbortSignal): Promise<Answer<T>> {
    const headers: Record<string, string> = etag ? { "If-None-Match": etag } : {};
    const response = await this.send(path, { headers }, signal);
    if (response.status === 304) return { data: null, etag: response.headers.get("ETag") ?? etag };
    return { data: await readJson<T>(response), etag: response.headers.get("ETag") };
  }

  async getData<T>(path: string, signal?: AbortSignal): Promise<T> {
    return (await this.get<T>(path, null, signal)).data as T;
  }

  async post<T>(path: string, body: unknown, headers: Record<string, string>): Promise<T> {
    const cookies = this.options.cookies?.() ?? (typeof document === "undefined" ? "" : document.cookie);
    const csrf = /(?:^|;\s*)csrftoken=([^;]*)/.exec(cookies)?.[1];
    const all = { "Content-Type": "application/json", ...headers, ...(csrf ? { "X-CSRFToken": decodeURIComponent(csrf) } : {}) };
    return readJson<T>(await this.send(path, { method: "POST", headers: all, body: JSON.stringify(body) }));
  }

  private async send(path: string, init: RequestInit, signal?: AbortSignal): Promise<Response> {
    const { onAnswer, onServerDate } = this.options;
    const attempt = AbortSignal.timeout(ATTEMPT_TIMEOUT_MS);
    try {
      const response = await (this.options.fetch ?? fetch)(path, {
        ...init,
        headers: { Accept: "application/json", ...init.headers },
        signal: signal ? AbortSignal.any([signal, attempt]) : attempt,
        credentials: "same-origin",
        cache: "no-store",
      });
      const type = response.headers.get("Content-Type") ?? "";
      onAnswer?.(response.status < 500 || type.includes("json"));
      const date = Date.parse(response.headers.get("Date") ?? "");
      if (!Number.isNaN(date)) onServerDate?.(date, Date.now());
      if (response.ok || response.status === 304) return response;
      const problem = type.includes("json") ? await response.json().catch(() => null) : null;
      throw new ApiError(response.status, problem as Problem | null, parseRetryAfter(response.headers.get("Retry-After")));
    } catch (error) {
      if (error instanceof ApiError || signal?.aborted) throw error; // a caller giving up says nothing of the server
      onAnswer?.(false);
      throw new NetworkError(attempt.aborted ? "No answer within 20 s." : "Cannot reach the server.");
    }
  }
}

async function readJson<T>(response: Response): Promise<T> {
  try {
    return (await response.json()) as T;
  } catch {
    // A 2xx without a readable body is worth another try (a create replays its job).
    throw new ApiError(502, { detail: "The server's answer could not be read." });
  }
}

/** Retry-After (RFC 9110: seconds or an HTTP-date) in ms from now; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | null {
  const date = /^\s*\d+\s*$/.test(value ?? "") ? nowMs + Number(value) * 1000 : Date.parse(value ?? "");
  return Number.isNaN(date) ? null : Math.max(0, date - nowMs);
}

/** Not worth retrying: a 4xx (but 408, 409 "same key in progress", 425, 429) means the request itself is wrong. */
export function isRetryable(error: unknown): boolean {
  const status = error instanceof ApiError ? error.status : 0;
  return status < 400 || [408, 409, 425, 429].includes(status) || status >= 500;
}

/**
 * Capped exponential backoff with full jitter (a random wait up to the
 * ceiling, so pages that lost the server together do not return in
 * lockstep), never shorter than a Retry-After (itself capped at 5 min).
 * `failures` is 0 before the first retry, as TanStack Query counts.
 */
export function retryDelay(failures: number, error: unknown, random: () => number = Math.random): number {
  const jitter = Math.floor(random() * Math.min(30_000, 500 * 2 ** Math.min(failures, 30)));
  const retryAfter = error instanceof ApiError ? (error.retryAfterMs ?? 0) : 0;
  return Math.max(jitter, Math.min(retryAfter, 5 * 60_000));
}
