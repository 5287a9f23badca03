/**
 * The one place that speaks HTTP to the back end, and the retry policy the
 * query client applies to every query and create.
 *
 * Every attempt tells `hooks.onAnswer` whether the app answered (however it
 * answered) or not, so reachability follows what really happened; a proxy's
 * HTML 502 is not the app answering.
 */
import type { Problem } from "./types";

/** The server answered with an error (problem+json when it comes from the app). */
export class ApiError extends Error {
  readonly status: number;
  readonly retryAfterMs: number | null;

  constructor(status: number, problem: Problem | null, retryAfterMs: number | null) {
    super(problemMessage(status, problem));
    this.name = "ApiError";
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/** No answer at all: the connection failed or timed out. */
export class NetworkError extends Error {
  constructor(message = "Cannot reach the server.") {
    super(message);
    this.name = "NetworkError";
  }
}

export interface HttpHooks {
  onAnswer?: (reachable: boolean) => void;
  /** The server's Date header and the local time it arrived. */
  onServerDate?: (serverMs: number, localMs: number) => void;
}

export interface HttpOptions {
  fetch?: typeof fetch;
  hooks?: HttpHooks;
  /** Cookie string to read the CSRF token from (document.cookie in the page). */
  cookies?: () => string;
}

/** A conditional GET's answer: `data` is null on a 304. */
export interface Answer<T> {
  data: T | null;
  etag: string | null;
}

// A hung connection counts as a failed attempt after this long.
const ATTEMPT_TIMEOUT_MS = 20_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
// A bad Retry-After header cannot park the page for longer than this.
const MAX_RETRY_AFTER_MS = 5 * 60_000;

export class Http {
  private readonly fetchImpl: typeof fetch;
  constructor(private readonly options: HttpOptions = {}) {
    const f = options.fetch ?? globalThis.fetch;
    // Bound so that a browser's fetch is not called with a foreign `this`.
    this.fetchImpl = (input, init) => f(input, init);
  }

  /** GET with If-None-Match when an ETag is given. */
  async get<T>(path: string, etag: string | null = null, signal?: AbortSignal): Promise<Answer<T>> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (etag) headers["If-None-Match"] = etag;
    const response = await this.send(path, { method: "GET", headers }, signal);
    if (response.status === 304) return { data: null, etag: response.headers.get("ETag") ?? etag };
    return { data: await readJson<T>(response), etag: response.headers.get("ETag") };
  }

  async post<T>(path: string, body: unknown, headers: Record<string, string>): Promise<T> {
    const csrf = this.csrfToken();
    const all = { "Content-Type": "application/json", Accept: "application/json", ...headers };
    const response = await this.send(path, {
      method: "POST",
      headers: csrf ? { ...all, "X-CSRFToken": csrf } : all,
      body: JSON.stringify(body),
    });
    return readJson<T>(response);
  }

  private async send(path: string, init: RequestInit, signal?: AbortSignal): Promise<Response> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), ATTEMPT_TIMEOUT_MS);
    const abort = () => timeout.abort();
    signal?.addEventListener("abort", abort, { once: true });
    const hooks = this.options.hooks ?? {};
    try {
      const response = await this.fetchImpl(path, { ...init, signal: timeout.signal, credentials: "same-origin", cache: "no-store" });
      hooks.onAnswer?.(response.status < 500 || (response.headers.get("Content-Type") ?? "").includes("json"));
      const date = Date.parse(response.headers.get("Date") ?? "");
      if (!Number.isNaN(date)) hooks.onServerDate?.(date, Date.now());
      if (response.ok || response.status === 304) return response;
      throw new ApiError(response.status, await readProblem(response), parseRetryAfter(response.headers.get("Retry-After")));
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (signal?.aborted) throw error; // the caller gave up: says nothing about the server
      hooks.onAnswer?.(false);
      throw new NetworkError(timeout.signal.aborted ? `No answer within ${ATTEMPT_TIMEOUT_MS / 1000} s.` : undefined);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
    }
  }

  private csrfToken(): string | null {
    const cookies = this.options.cookies?.() ?? (typeof document === "undefined" ? "" : document.cookie);
    const match = /(?:^|;\s*)csrftoken=([^;]*)/.exec(cookies);
    return match?.[1] ? decodeURIComponent(match[1]) : null;
  }
}

async function readJson<T>(response: Response): Promise<T> {
  try {
    return (await response.json()) as T;
  } catch {
    // A 2xx without a readable body: worth another try (a create replays its job).
    throw new ApiError(502, { detail: "The server's answer could not be read." }, null);
  }
}

async function readProblem(response: Response): Promise<Problem | null> {
  if (!(response.headers.get("Content-Type") ?? "").includes("json")) return null;
  try {
    const data: unknown = await response.json();
    return typeof data === "object" && data !== null ? (data as Problem) : null;
  } catch {
    return null;
  }
}

export function problemMessage(status: number, problem: Problem | null): string {
  if (problem?.detail) return problem.detail;
  if (problem?.title) return problem.title;
  if (status === 429) return "Too many requests; trying again shortly.";
  if (status >= 500) return `The server had a problem (HTTP ${status}).`;
  return `The request failed (HTTP ${status}).`;
}

/** Retry-After (RFC 9110: seconds or an HTTP-date) in milliseconds from now; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | null {
  const text = value?.trim() ?? "";
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = /[a-z]{3}/i.test(text) ? Date.parse(text) : NaN;
  return Number.isNaN(date) ? null : Math.max(0, date - nowMs);
}

/**
 * Whether to try again: not when the server judged the request itself
 * wrong (any 4xx but 408, 409 "same key still in progress", 425, 429).
 */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof ApiError)) return true;
  const s = error.status;
  return s === 408 || s === 409 || s === 425 || s === 429 || s >= 500;
}

/**
 * Capped exponential backoff with full jitter (a uniformly random wait up to
 * the ceiling, so pages that lost the server together do not come back in
 * lockstep); a Retry-After from the server is a floor.
 */
export function retryDelay(failures: number, error: unknown, random: () => number = Math.random): number {
  // `failures` is 0 before the first retry (TanStack Query's count).
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(failures, 30));
  const jitter = Math.floor(random() * ceiling);
  const floor = error instanceof ApiError && error.retryAfterMs !== null ? Math.min(error.retryAfterMs, MAX_RETRY_AFTER_MS) : 0;
  return Math.max(jitter, floor);
}
