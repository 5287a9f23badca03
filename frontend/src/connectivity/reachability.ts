/**
 * Whether the server answers, judged by what actually happened: a response
 * from the app or an opened event stream says yes, a failed request says
 * no. It drives TanStack Query's `onlineManager`, so creates pause while
 * the server cannot be reached and resume the moment anything gets
 * through. The browser's `online`/`offline` events (the manager's own
 * listeners) are only hints: `online` prompts a new try, which then tells.
 */
import { onlineManager } from "@tanstack/react-query";

let everConnected = false;
const listeners = new Set<() => void>();

export function reportAnswer(reachable: boolean): void {
  if (reachable && !everConnected) {
    everConnected = true;
    for (const listener of [...listeners]) listener();
  }
  onlineManager.setOnline(reachable);
}

export type ConnectionState = "online" | "offline";

/** "online" once the server has answered and nothing has failed since. */
export function connectionState(): ConnectionState {
  return everConnected && onlineManager.isOnline() ? "online" : "offline";
}

export function hasEverConnected(): boolean {
  return everConnected;
}

export function subscribeReachability(listener: () => void): () => void {
  listeners.add(listener);
  const unsubscribe = onlineManager.subscribe(listener);
  return () => {
    listeners.delete(listener);
    unsubscribe();
  };
}

/** For tests: forget that the server ever answered. */
export function resetReachability(): void {
  everConnected = false;
  onlineManager.setOnline(true);
}
