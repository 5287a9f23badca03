import type { Job } from "../api/types";
import type { View } from "../app/usePage";
import type { ServerClock } from "../jobs/serverClock";
import { JobRow } from "./JobRow";
import { PendingCreateRow } from "./PendingCreateRow";

export function JobList({
  view,
  clock,
  onOpenPhoto,
  onLoadMore,
  onRetry,
  onDismissRejected,
}: {
  view: View;
  clock: ServerClock;
  onOpenPhoto: (job: Job) => void;
  onLoadMore: () => void;
  onRetry: () => void;
  onDismissRejected: (key: string) => void;
}) {
  const empty = view.jobs.length === 0 && view.pendingCreates.length === 0;
  const filtered = view.statuses.length > 0;

  return (
    <section className="jobs-section" aria-labelledby="jobs-heading">
      <h2 id="jobs-heading" className="visually-hidden">
        Jobs
      </h2>
      {view.listState === "error" && view.jobs.length === 0 ? (
        <div className="list-message list-message--error" role="alert">
          <p>The jobs could not be loaded: {view.listError}</p>
          <button type="button" className="btn" onClick={onRetry}>
            Try again
          </button>
        </div>
      ) : null}
      {view.listState === "loading" && empty ? (
        <p className="list-message" aria-busy="true">
          Loading jobs…
        </p>
      ) : null}
      {view.listState === "ready" && empty ? (
        <p className="list-message" data-testid="empty-list">
          {filtered ? "No jobs with this status." : "No jobs yet. Press “New job” to create one."}
        </p>
      ) : null}

      <ol className="jobs" id="jobs" tabIndex={-1} aria-label="Jobs, newest first">
        {view.pendingCreates.map((pending) => (
          <PendingCreateRow key={`pending-${pending.key}`} pending={pending} onDismiss={onDismissRejected} />
        ))}
        {view.jobs.map((job) => (
          <JobRow key={job.id} job={job} clock={clock} onOpenPhoto={onOpenPhoto} />
        ))}
      </ol>

      {view.hasMore ? (
        <div className="load-more">
          <button
            type="button"
            className="btn"
            onClick={onLoadMore}
            disabled={view.loadingMore}
            aria-busy={view.loadingMore}
            data-testid="load-more"
          >
            {view.loadingMore ? "Loading…" : "Load more"}
          </button>
          {view.loadMoreError ? (
            <p className="load-more__error" role="alert">
              {view.loadMoreError}
            </p>
          ) : null}
        </div>
      ) : null}
    </section>
  );
}
