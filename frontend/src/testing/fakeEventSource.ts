import { CLOSED, type EventSourceLike } from "../live/liveUpdates";

const CONNECTING = 0;
const OPEN = 1;

/** An EventSource driven by the test: open(), emit(), fail(). */
export class FakeEventSource implements EventSourceLike {
  readyState = CONNECTING;
  closed = false;
  private readonly listeners = new Map<string, ((event: Event) => void)[]>();

  constructor(readonly url: string) {}

  addEventListener(type: string, listener: (event: Event) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
    this.readyState = CLOSED;
  }

  open(): void {
    this.readyState = OPEN;
    this.dispatch("open", new Event("open"));
  }

  emit(type: string, data: unknown, id?: string): void {
    const event = new MessageEvent(type, {
      data: typeof data === "string" ? data : JSON.stringify(data),
      lastEventId: id ?? "",
    });
    this.dispatch(type, event);
  }

  /** A dropped connection: the browser will reconnect (CONNECTING) or give up (CLOSED). */
  fail(state: typeof CONNECTING | typeof CLOSED = CONNECTING): void {
    this.readyState = state;
    this.dispatch("error", new Event("error"));
  }

  private dispatch(type: string, event: Event): void {
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }
}
