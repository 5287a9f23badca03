import type { Job } from "../api/types";

let counter = 0;

/** A job as the API sends it; ids made unique and time-ordered by a counter. */
export function makeJob(overrides: Partial<Job> = {}): Job {
  counter += 1;
  const id = overrides.id ?? `01J0000000000000000000${String(counter).padStart(4, "0")}`;
  return {
    id,
    url: `/api/jobs/${id}`,
    status: "pending",
    created_at: "2024-05-01T12:00:00.000Z",
    run_at: "2024-05-01T12:00:30.000Z",
    updated_at: "2024-05-01T12:00:00.000Z",
    delay_seconds: 30,
    started_at: null,
    finished_at: null,
    attempts: 0,
    pending_reason: null,
    next_attempt_at: null,
    result: null,
    error: null,
    ...overrides,
  };
}
