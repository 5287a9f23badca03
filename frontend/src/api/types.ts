/** Shapes of the JSON the backend sends (see the HTTP API in DESIGN.md). */

export const JOB_STATUSES = ["pending", "running", "completed", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export interface PhotoUrls {
  raw: string;
  full: string;
  regular: string;
  small: string;
  thumb: string;
}

export interface PhotoResult {
  photo_id: string;
  description: string | null;
  alt_description: string | null;
  urls: PhotoUrls;
  width: number;
  height: number;
  color: string | null;
  blur_hash: string | null;
  photographer_name: string;
  photographer_username: string;
  photographer_url: string;
  photo_url: string;
  unsplash_url: string;
  source: "unsplash" | "demo";
}

export interface JobError {
  code: string;
  message: string;
}

export interface Job {
  id: string;
  url: string;
  status: JobStatus;
  created_at: string;
  run_at: string;
  updated_at: string;
  delay_seconds: number;
  started_at: string | null;
  finished_at: string | null;
  attempts: number;
  pending_reason: string | null;
  next_attempt_at: string | null;
  result: PhotoResult | null;
  error: JobError | null;
}

export interface JobPage {
  results: Job[];
  next: string | null;
}

export type StatusCounts = Record<JobStatus, number>;

export interface Stats {
  counts: StatusCounts;
  total: number;
}

export interface AppConfig {
  min_delay: number;
  max_delay: number;
  delay_step: number;
  photo_source: "demo" | "unsplash";
  app_name: string;
}

export interface CreateJobBody {
  delay_seconds?: number;
}

/** RFC 9457 problem details, as every /api/ error is sent. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
}

export function isJobStatus(value: unknown): value is JobStatus {
  return typeof value === "string" && (JOB_STATUSES as readonly string[]).includes(value);
}

/**
 * A light structural check for data that arrives from the network (events
 * in particular): enough to keep a malformed message out of the store.
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
