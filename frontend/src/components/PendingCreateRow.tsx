import type { PendingCreate } from "../app/usePage";
import { formatClock, formatDelay } from "../jobs/format";

const LABELS: Record<PendingCreate["state"], string> = {
  sending: "Sending",
  queued: "Queued",
  rejected: "Not created",
};

/** A create the server has not confirmed yet (or refused). */
export function PendingCreateRow({ pending, onDismiss }: { pending: PendingCreate; onDismiss: (key: string) => void }) {
  const delay = pending.body.delay_seconds;
  return (
    <li
      className={`job job--optimistic job--${pending.state}`}
      data-testid="job-row"
      data-job-id=""
      data-status={pending.state}
      data-idempotency-key={pending.key}
    >
      <div className="job__head">
        <span className={`badge badge--${pending.state}`}>{LABELS[pending.state]}</span>
        <span className="job__id">new job</span>
        <span className="job__meta">
          asked at {formatClock(pending.createdAt)} · {typeof delay !== "number" ? "random delay" : `${formatDelay(delay)} delay`}
        </span>
      </div>
      <div className="job__body">
        {pending.state === "sending" ? <p className="job__note">Sending to the server…</p> : null}
        {pending.state === "queued" ? (
          <p className="job__note">
            Waiting to be sent{pending.message ? ` (${pending.message})` : ""}. It will be sent once the server is
            reachable.
          </p>
        ) : null}
        {pending.state === "rejected" ? (
          <div className="job__problem">
            <p>The server refused this job: {pending.message}</p>
            <button type="button" className="btn btn--ghost btn--small" onClick={() => onDismiss(pending.key)}>
              Dismiss
            </button>
          </div>
        ) : null}
      </div>
    </li>
  );
}
