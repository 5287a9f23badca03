/**
 * The one place that speaks HTTP to the backend. Every request goes through
 * `fetchWithRetry`; every attempt's fate is reported to `onReachability`
 * (a response from the app means the server is reachable, however it
 * answered) so the connection indicator reflects what really happened.
 */
import type { SendOutcome } from "../outbox/outbox";
import { fetchWithRetry, isRetryableStatus, parseRetryAfter, type RetryOptions } from "./retry";
import type { AppConfig, CreateJobBody, Job, JobPage, JobStatus, Problem, Stats } from "./types";
import { isJob } from "./types";

/** The server answered with an error (problem+json when it comes from the app). */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;
  readonly retryAfterMs: number | null;

  constructor(status: number, problem: Problem | null, retryAfterMs: number | null) {
    super(problemMessage(status, problem));
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
    this.retryAfterMs = retryAfterMs;
  }
}

/** No response at all: the connection failed or timed out. */
export class NetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NetworkError";
  }
}

export type Conditional<T> = { notModified: true; etag: string | null } | { notModified: false; data: T; etag: string | null };

export interface RequestOptions {
  signal?: AbortSignal;
  /** Attempts including the first; the default suits a user waiting for an answer. */
  maxAttempts?: number;
}

export interface ListQuery {
  statuses?: readonly JobStatus[];
  limit?: number;
  /** The `next` link of a previous page (it already carries the query). */
  next?: string | null;
}

export interface ApiClientOptions {
  fetch?: typeof fetch;
  /** Prefix of every path; "" for the same origin. */
  baseUrl?: string;
  retry?: Omit<RetryOptions, "signal" | "maxAttempts">;
  onReachability?: (reachable: boolean) => void;
  /** Called with the server's Date header and the local time it arrived. */
  onServerDate?: (serverMs: number, localMs: number) => void;
  /** Cookie string to read the CSRF token from (document.cookie in the page). */
  cookies?: () => string;
  now?: () => number;
}

const DEFAULT_ATTEMPTS = 5;
const ATTEMPT_TIMEOUT_MS = 20_000;

export class ApiClient {
  private readonly fetchImpl: typeof fetch;
  private readonly baseUrl: string;
  private readonly options: ApiClientOptions;
  private readonly now: () => number;

  constructor(options: ApiClientOptions = {}) {
    this.options = options;
    // Bound so that a browser's fetch is not called with a foreign `this`.
    const f = options.fetch ?? globalThis.fetch;
    this.fetchImpl = (input, init) => f(input, init);
    this.baseUrl = options.baseUrl ?? "";
    this.now = options.now ?? Date.now;
  }

  listJobs(query: ListQuery, etag: string | null = null, options: RequestOptions = {}): Promise<Conditional<JobPage>> {
    return this.getJson(jobsPath(query), etag, options, isJobPage);
  }

  async getJob(id: string, options: RequestOptions = {}): Promise<Job> {
    const response = await this.getJson(`/api/jobs/${encodeURIComponent(id)}`, null, options, isJob);
    if (response.notModified) throw new Error("Unexpected 304 without If-None-Match");
    return response.data;
  }

  async getStats(options: RequestOptions = {}): Promise<Stats> {
    const response = await this.getJson("/api/stats", null, options, isStats);
    if (response.notModified) throw new Error("Unexpected 304 without If-None-Match");
    return response.data;
  }

  async getConfig(options: RequestOptions = {}): Promise<AppConfig> {
    const response = await this.getJson("/api/config", null, options, isConfig);
    if (response.notModified) throw new Error("Unexpected 304 without If-None-Match");
    return response.data;
  }

  /**
   * One attempt at a create (the outbox schedules the retries, always with
   * the same key), classified for the outbox.
   */
  async createJobAttempt(body: CreateJobBody, idempotencyKey: string, signal?: AbortSignal): Promise<SendOutcome<Job>> {
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      Accept: "application/json",
      "Idempotency-Key": idempotencyKey,
    };
    const csrf = this.csrfToken();
    if (csrf) headers["X-CSRFToken"] = csrf;
    let response: Response;
    try {
      response = await this.request(
        "/api/jobs",
        { method: "POST", headers, body: JSON.stringify(body), credentials: "same-origin" },
        { signal, maxAttempts: 1 },
      );
    } catch (error) {
      return { kind: "retry", retryAfterMs: null, message: networkMessage(error) };
    }
    if (response.ok) {
      const data: unknown = await response.json().catch(() => null);
      if (isJob(data)) return { kind: "sent", result: data };
      // A 2xx without a readable job: the job exists (the key is spent), but
      // we cannot show it. Retrying with the same key replays it.
      return { kind: "retry", retryAfterMs: null, message: "The server's answer could not be read" };
    }
    const problem = await readProblem(response);
    const message = problemMessage(response.status, problem);
    if (isRetryableStatus(response.status)) {
      return { kind: "retry", retryAfterMs: parseRetryAfter(response.headers.get("Retry-After"), this.now()), message };
    }
    return { kind: "rejected", status: response.status, message };
  }

  private async getJson<T>(
    path: string,
    etag: string | null,
    options: RequestOptions,
    guard: (value: unknown) => value is T,
  ): Promise<Conditional<T>> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (etag) headers["If-None-Match"] = etag;
    let response: Response;
    try {
      response = await this.request(path, { method: "GET", headers, credentials: "same-origin" }, options);
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") throw error;
      throw new NetworkError(networkMessage(error), { cause: error });
    }
    if (response.status === 304) return { notModified: true, etag: response.headers.get("ETag") ?? etag };
    if (!response.ok) {
      const problem = await readProblem(response);
      throw new ApiError(response.status, problem, parseRetryAfter(response.headers.get("Retry-After"), this.now()));
    }
    const data: unknown = await response.json();
    if (!guard(data)) throw new ApiError(response.status, { detail: "The server sent data this page cannot read." }, null);
    return { notModified: false, data, etag: response.headers.get("ETag") };
  }

  private request(path: string, init: RequestInit, options: RequestOptions): Promise<Response> {
    const url = this.baseUrl + path;
    const outer = options.signal;
    return fetchWithRetry(
      async (signal) => {
        try {
          const response = await this.fetchImpl(url, { ...init, signal, cache: "no-store" });
          this.options.onReachability?.(isFromApp(response));
          const date = response.headers.get("Date");
          if (date) {
            const serverMs = Date.parse(date);
            if (!Number.isNaN(serverMs)) this.options.onServerDate?.(serverMs, this.now());
          }
          return response;
        } catch (error) {
          if (!outer?.aborted) this.options.onReachability?.(false);
          throw error;
        }
      },
      {
        attemptTimeoutMs: ATTEMPT_TIMEOUT_MS,
        ...this.options.retry,
        maxAttempts: options.maxAttempts ?? DEFAULT_ATTEMPTS,
        signal: outer,
      },
    );
  }

  private csrfToken(): string | null {
    const cookies = this.options.cookies?.() ?? (typeof document === "undefined" ? "" : document.cookie);
    for (const part of cookies.split(";")) {
      const [name, ...rest] = part.trim().split("=");
      if (name === "csrftoken") return decodeURIComponent(rest.join("="));
    }
    return null;
  }
}

/** Path and query of a list request (a `next` link is reduced to path+query: same origin). */
export function jobsPath(query: ListQuery): string {
  if (query.next) {
    const url = new URL(query.next, "http://same-origin.invalid");
    return url.pathname + url.search;
  }
  const params = new URLSearchParams();
  params.set("limit", String(query.limit ?? 50));
  if (query.statuses && query.statuses.length > 0) params.set("status", query.statuses.join(","));
  // Commas are legal in a query; keep them readable.
  return `/api/jobs?${params.toString().replace(/%2C/g, ",")}`;
}

/**
 * Did this response come from our app (so the server is reachable), or
 * from something in between (a proxy's 502/504 page)?
 */
function isFromApp(response: Response): boolean {
  if (response.status < 500) return true;
  const type = response.headers.get("Content-Type") ?? "";
  return type.includes("json");
}

async function readProblem(response: Response): Promise<Problem | null> {
  const type = response.headers.get("Content-Type") ?? "";
  if (!type.includes("json")) {
    response.body?.cancel().catch(() => undefined);
    return null;
  }
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

function networkMessage(error: unknown): string {
  if (error instanceof Error && error.message.startsWith("No answer within")) return error.message;
  return "Cannot reach the server.";
}

function isJobPage(value: unknown): value is JobPage {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return Array.isArray(v.results) && (v.next === null || typeof v.next === "string");
}

function isStats(value: unknown): value is Stats {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.counts === "object" && v.counts !== null && typeof v.total === "number";
}

function isConfig(value: unknown): value is AppConfig {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.min_delay === "number" && typeof v.max_delay === "number" && typeof v.delay_step === "number";
}
