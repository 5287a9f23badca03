import type { View } from "../app/usePage";
import { useNow } from "../app/hooks";
import { formatAge } from "../jobs/format";

/**
 * Online/offline as the page experiences it, and how old the data is when
 * it may be stale (offline, or polling instead of a live stream).
 */
export function ConnectionStatus({ view }: { view: View }) {
  const live = view.connection === "online" && view.mode === "stream";
  const now = useNow(!live);
  const age = view.lastUpdatedAt === null ? null : formatAge(now - view.lastUpdatedAt);

  let label: string;
  let detail: string | null = null;
  if (view.connection === "online") {
    label = "Online";
    detail = live ? "live" : age ? `updated ${age}` : null;
  } else if (!view.everConnected) {
    label = "Connecting…";
  } else {
    label = "Offline";
    detail = age ? `last updated ${age}` : null;
  }

  return (
    <span
      className={`connection connection--${view.connection}${view.everConnected ? "" : " connection--pending"}`}
      data-testid="connection-status"
      data-state={view.connection}
      data-mode={view.mode}
    >
      <span className="connection__dot" aria-hidden="true" />
      <span className="connection__text">
        <span className="connection__label">{label}</span>
        {detail ? (
          <span className="connection__detail" data-testid="last-updated">
            {" "}
            · {detail}
          </span>
        ) : null}
      </span>
    </span>
  );
}
