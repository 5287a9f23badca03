import type { Job } from "../api/types";
import { Services } from "../app/services";
import { onlineManager } from "@tanstack/react-query";
import { FakeEventSource } from "./fakeEventSource";
import { makeJob } from "./jobs";

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
  /** Answers to list requests wait for this, when set (to hold one back). */
  listGate: Promise<void> | null = null;

  fetch = async (url: string, init: RequestInit = {}): Promise<Response> => {
    const request: Request = {
      method: init.method ?? "GET",
      url,
      headers: (init.headers ?? {}) as Record<string, string>,
      body: init.body as string | undefined,
    };
    this.requests.push(request);
    if (!this.reachable) throw new TypeError("Failed to fetch");
    const path = url.split("?")[0];
    if (path === "/api/jobs" && request.method === "POST") {
      if (this.createStatus !== 202) return this.json(this.createStatus, { detail: "Bad delay." });
      const key = request.headers["Idempotency-Key"];
      const existing = this.jobs.find((j) => j.url.endsWith(`#${key}`));
      const job = existing ?? makeJob({ url: `/api/jobs/x#${key}` });
      if (!existing) this.jobs.unshift(job);
      return this.json(202, job);
    }
    if (path === "/api/jobs") {
      const jobs = this.jobs; // the snapshot is taken when the request arrives
      if (this.listGate) await this.listGate;
      const etag = `"${jobs.map((j) => j.id + j.updated_at).join(",")}"`;
      if (request.headers["If-None-Match"] === etag) return new Response(null, { status: 304 });
      return this.json(200, { results: jobs, next: null }, { ETag: etag });
    }
    if (path === "/api/stats") return this.json(200, { counts: { pending: this.jobs.length }, total: this.jobs.length });
    if (path === "/api/config") {
      return this.json(200, { min_delay: 5, max_delay: 300, delay_step: 5, photo_source: "demo", app_name: "Jobs" });
    }
    return this.json(404, { detail: "Not found." });
  };

  private json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
    return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
  }
}

/** Services over a fake server and fake EventSources; `storage` carries the outbox across "reloads". */
export function setupServices(storage: Storage = new MemoryStorage()) {
  onlineManager.setOnline(true);
  const server = new FakeServer();
  const sources: FakeEventSource[] = [];
  const services = new Services({
    fetch: server.fetch as typeof fetch,
    storage,
    createEventSource: (url) => {
      const source = new FakeEventSource(url);
      sources.push(source);
      return source;
    },
  });
  const stream = () => {
    const source = sources.at(-1);
    if (!source) throw new Error("no stream");
    return source;
  };
  return { services, server, stream, sources, storage };
}

/** localStorage in memory. */
export class MemoryStorage implements Storage {
  readonly data = new Map<string, string>();
  get length(): number {
    return this.data.size;
  }
  clear(): void {
    this.data.clear();
  }
  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }
  key(index: number): string | null {
    return [...this.data.keys()][index] ?? null;
  }
  removeItem(key: string): void {
    this.data.delete(key);
  }
  setItem(key: string, value: string): void {
    this.data.set(key, value);
  }
}
