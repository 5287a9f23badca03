import { useSyncExternalStore } from "react";

// One shared once-a-second clock for every countdown on the page.
const tickListeners = new Set<() => void>();
let tickTimer: ReturnType<typeof setInterval> | null = null;
let tickNow = Date.now();

function subscribeTick(listener: () => void): () => void {
  tickListeners.add(listener);
  if (tickTimer === null) {
    tickNow = Date.now();
    tickTimer = setInterval(() => {
      tickNow = Date.now();
      for (const l of [...tickListeners]) l();
    }, 1000);
  }
  return () => {
    tickListeners.delete(listener);
    if (tickListeners.size === 0 && tickTimer !== null) {
      clearInterval(tickTimer);
      tickTimer = null;
    }
  };
}

const noSubscription = () => () => undefined;

/** Local time, updated every second while `active`. */
export function useNow(active = true): number {
  const ticking = useSyncExternalStore(active ? subscribeTick : noSubscription, () => tickNow);
  // When inactive, the value is the time of the last render: fine for static text.
  return active ? ticking : tickNow;
}
