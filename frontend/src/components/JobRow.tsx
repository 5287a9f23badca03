import { memo } from "react";
import type { Job } from "../api/types";
import { useNow } from "../app/hooks";
import { STATUS_LABELS, formatClock, formatCountdown, formatDelay, shortId } from "../jobs/format";
import type { ServerClock } from "../jobs/serverClock";
import { JobPhoto } from "./JobPhoto";

interface Props {
  job: Job;
  clock: ServerClock;
  onOpenPhoto: (job: Job) => void;
}

export const JobRow = memo(function JobRow({ job, clock, onOpenPhoto }: Props) {
  return (
    <li className={`job job--${job.status}`} data-testid="job-row" data-job-id={job.id} data-status={job.status}>
      <div className="job__head">
        <span className={`badge badge--${job.status}`}>{STATUS_LABELS[job.status]}</span>
        <span className="job__id" title={job.id}>
          <span className="visually-hidden">Job </span>
          {shortId(job.id)}
        </span>
        <span className="job__meta">
          created {formatClock(job.created_at)} · {formatDelay(job.delay_seconds)} delay
        </span>
      </div>
      <div className="job__body">
        {job.status === "pending" ? <PendingBody job={job} clock={clock} /> : null}
        {job.status === "running" ? <RunningBody job={job} /> : null}
        {job.status === "completed" && job.result ? <JobPhoto job={job} result={job.result} onOpen={onOpenPhoto} /> : null}
        {job.status === "completed" && !job.result ? <p className="job__note">Completed.</p> : null}
        {job.status === "failed" ? <FailedBody job={job} /> : null}
        {job.status === "cancelled" ? (
          <p className="job__note">Cancelled{job.finished_at ? ` at ${formatClock(job.finished_at)}` : ""}.</p>
        ) : null}
      </div>
    </li>
  );
});

function PendingBody({ job, clock }: { job: Job; clock: ServerClock }) {
  useNow();
  const now = clock.now();
  const retrying = job.attempts > 0 || job.pending_reason !== null;
  const nextTry = job.next_attempt_at ? Date.parse(job.next_attempt_at) : NaN;
  // A job waiting to try again counts down to its next attempt, from when it was set back.
  const waitingForRetry = retrying && !Number.isNaN(nextTry);
  const start = Date.parse(waitingForRetry ? job.updated_at : job.created_at);
  const target = waitingForRetry ? nextTry : Date.parse(job.run_at);

  const remaining = target - now;
  const span = target - start;
  const fraction = span > 0 ? Math.min(1, Math.max(0, (now - start) / span)) : 1;
  const percent = Math.round(fraction * 100);
  const due = remaining <= 0;

  return (
    <div className="pending">
      <div
        className="progress"
        role="progressbar"
        aria-label={waitingForRetry ? "Time until the next attempt" : "Time until the job runs"}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
        aria-valuetext={due ? "due" : `${formatCountdown(remaining)} left`}
      >
        <div className="progress__bar" style={{ width: `${fraction * 100}%` }} />
      </div>
      <p className="pending__countdown">
        {due ? (
          retrying ? (
            "Trying again shortly"
          ) : (
            "Due now, waiting for a worker"
          )
        ) : (
          <>
            {waitingForRetry ? "Next try in " : "Runs in "}
            <strong className="countdown" data-testid="countdown">
              {formatCountdown(remaining)}
            </strong>
            <span className="pending__at"> at {formatClock(new Date(target).toISOString())}</span>
          </>
        )}
      </p>
      {retrying ? (
        <p className="pending__retry" data-testid="pending-reason">
          {job.attempts > 0 ? `Attempt ${job.attempts}` : "Waiting"}
          {job.pending_reason ? `: ${job.pending_reason}` : ""}
        </p>
      ) : null}
    </div>
  );
}

function RunningBody({ job }: { job: Job }) {
  return (
    <div className="pending">
      <div className="progress progress--running" role="progressbar" aria-label="Fetching a photo">
        <div className="progress__bar" />
      </div>
      <p className="pending__countdown">
        Fetching a photo…
        {job.attempts > 1 ? <span className="pending__at"> (attempt {job.attempts})</span> : null}
      </p>
    </div>
  );
}

function FailedBody({ job }: { job: Job }) {
  return (
    <div className="job__problem" data-testid="job-error">
      <p>
        <strong>Could not get a photo.</strong> {job.error?.message ?? "The job failed."}
      </p>
      {job.attempts > 1 ? <p className="job__note">Tried {job.attempts} times.</p> : null}
    </div>
  );
}
