import { ApiClient } from "../api/client";
import type { Job } from "../api/types";
import { Controller } from "../app/controller";
import { FakeEventSource } from "./fakeEventSource";
import { makeJob } from "./jobs";
import { MemoryStorage } from "./memoryStorage";

interface Request {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** A tiny stand-in for the backend: jobs in memory, and a switch to drop the network. */
export class FakeServer {
  jobs: Job[] = [];
  reachable = true;
  requests: Request[] = [];
  createStatus = 202;

  fetch = (url: string, init: RequestInit = {}): Promise<Response> => {
    const request: Request = {
      method: init.method ?? "GET",
      url,
      headers: (init.headers ?? {}) as Record<string, string>,
      body: init.body as string | undefined,
    };
    this.requests.push(request);
    if (!this.reachable) return Promise.reject(new TypeError("Failed to fetch"));
    const path = url.split("?")[0];
    if (path === "/api/jobs" && request.method === "POST") {
      if (this.createStatus !== 202) return Promise.resolve(this.json(this.createStatus, { detail: "Bad delay." }));
      const key = request.headers["Idempotency-Key"];
      const existing = this.jobs.find((j) => j.url.endsWith(`#${key}`));
      const job = existing ?? makeJob({ url: `/api/jobs/x#${key}` });
      if (!existing) this.jobs.unshift(job);
      return Promise.resolve(this.json(202, job));
    }
    if (path === "/api/jobs") {
      const etag = `"${this.jobs.map((j) => j.id + j.updated_at).join(",")}"`;
      if (request.headers["If-None-Match"] === etag) return Promise.resolve(new Response(null, { status: 304 }));
      return Promise.resolve(this.json(200, { results: this.jobs, next: null }, { ETag: etag }));
    }
    if (path === "/api/stats") {
      return Promise.resolve(this.json(200, { counts: { pending: this.jobs.length }, total: this.jobs.length }));
    }
    if (path === "/api/config") {
      return Promise.resolve(
        this.json(200, { min_delay: 5, max_delay: 300, delay_step: 5, photo_source: "demo", app_name: "Jobs" }),
      );
    }
    return Promise.resolve(this.json(404, { detail: "Not found." }));
  };

  private json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
    return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
  }
}

export function setupController(storage = new MemoryStorage()) {
  const server = new FakeServer();
  const sources: FakeEventSource[] = [];
  let controller: Controller | null = null;
  const client = new ApiClient({
    fetch: server.fetch as typeof fetch,
    retry: { random: () => 0 },
    onReachability: (ok) => controller?.connectivity.report(ok),
  });
  controller = new Controller({
    client,
    storage,
    createEventSource: (url) => {
      const source = new FakeEventSource(url);
      sources.push(source);
      return source;
    },
  });
  const stream = () => {
    const source = sources[sources.length - 1];
    if (!source) throw new Error("no stream");
    return source;
  };
  return { controller, server, stream, storage };
}
