/**
 * The JSON shapes of the API, taken from the types generated from the
 * server's OpenAPI schema (`schema.d.ts`, see scripts/api-types.mjs).
 */
import type { components } from "./schema";

type Schemas = components["schemas"];

export type Job = Schemas["Job"];
export type JobStatus = Schemas["StatusEnum"];
export type PhotoResult = Schemas["Photo"];
export type PhotoUrls = Schemas["PhotoUrls"];
export type JobError = Schemas["JobError"];
export type JobPage = Schemas["JobPage"];
export type Stats = Schemas["Stats"];
export type CreateJobBody = Schemas["JobCreate"];
export type Problem = Partial<Schemas["Problem"]>;

/** The schema declares /api/config as a free-form object, so its shape is written here. */
export interface AppConfig {
  min_delay: number;
  max_delay: number;
  delay_step: number;
  photo_source: "demo" | "unsplash";
  app_name: string;
}

// The order the page shows statuses in. A status added to the schema fails
// the type-check here until it is given its place.
const STATUS_ORDER = { pending: 0, running: 1, completed: 2, failed: 3, cancelled: 4 } satisfies Record<JobStatus, number>;
export const JOB_STATUSES = (Object.keys(STATUS_ORDER) as JobStatus[]).sort((a, b) => STATUS_ORDER[a] - STATUS_ORDER[b]);

export function isJobStatus(value: unknown): value is JobStatus {
  return typeof value === "string" && value in STATUS_ORDER;
}

/**
 * A light structural check for data that arrives from the network (events
 * in particular): enough to keep a malformed message out of the cache.
 */
export function isJob(value: unknown): value is Job {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.id === "string" &&
    isJobStatus(v.status) &&
    typeof v.created_at === "string" &&
    typeof v.run_at === "string" &&
    typeof v.updated_at === "string"
  );
}
