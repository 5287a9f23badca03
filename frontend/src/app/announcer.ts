/**
 * Messages for the aria-live region. Messages within a second are read
 * together, so a burst of changes is one announcement.
 */
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
