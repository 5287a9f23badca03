/** Words and numbers as the page shows them. */
import type { JobStatus } from "../api/types";

export const STATUS_LABELS: Record<JobStatus, string> = {
  pending: "Pending",
  running: "Running",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

/** "5 s", "1 min", "2 min 30 s" (for a chosen delay). */
export function formatDelay(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const minutes = Math.floor(s / 60);
  const rest = s % 60;
  if (minutes === 0) return `${rest} s`;
  if (rest === 0) return `${minutes} min`;
  return `${minutes} min ${rest} s`;
}

/** "0:07", "4:59" (a running countdown). */
export function formatCountdown(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  return `${minutes}:${String(seconds).padStart(2, "0")}`;
}

/** "just now", "12 s ago", "3 min ago", "2 h ago". */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

/** The id's last characters: unique enough to tell jobs apart at a glance. */
export function shortId(id: string): string {
  return id.length > 8 ? `…${id.slice(-8)}` : id;
}

/** Local time of day, e.g. "14:03:09". */
export function formatClock(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** The delays a user may choose from, per the server's configuration. */
export function delayChoices(min: number, max: number, step: number): number[] {
  const choices: number[] = [];
  if (!(step > 0) || max < min) return choices;
  const first = Math.ceil(min / step) * step;
  for (let value = first; value <= max && choices.length < 1000; value += step) choices.push(value);
  return choices;
}
