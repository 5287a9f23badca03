/**
 * Messages for the aria-live region: job changes, creates, the connection.
 * Messages within a second are read together, so a burst of changes is one
 * announcement.
 */
import type { Job } from "../api/types";
import { STATUS_LABELS, shortId } from "../jobs/format";
import type { JobChange } from "../jobs/jobsCache";

export interface Announcement {
  id: number;
  text: string;
}

export class Announcer {
  private current: Announcement | null = null;
  private waiting: string[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private nextId = 1;
  private readonly listeners = new Set<() => void>();

  getSnapshot = (): Announcement | null => this.current;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  jobsChanged(changes: readonly JobChange[]): void {
    for (const { job, previous } of changes) {
      if (previous && previous.status !== job.status) this.say(`Job ${shortId(job.id)} is now ${STATUS_LABELS[job.status].toLowerCase()}.`);
    }
  }

  created(job: Job): void {
    this.say(`Job ${shortId(job.id)} created.`);
  }

  connection(online: boolean): void {
    this.say(online ? "Connection restored." : "Connection lost. New jobs are kept and sent when it is back.");
  }

  say(text: string): void {
    this.waiting.push(text);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      const messages = this.waiting.splice(0);
      const text = messages.length <= 3 ? messages.join(" ") : `${messages.length} jobs changed. ${messages.slice(-2).join(" ")}`;
      this.current = { id: this.nextId++, text };
      for (const listener of [...this.listeners]) listener();
    }, 1000);
  }
}
