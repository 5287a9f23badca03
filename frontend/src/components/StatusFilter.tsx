import type { JobStatus, Stats } from "../api/types";
import { JOB_STATUSES } from "../api/types";
import { STATUS_LABELS } from "../jobs/format";

/** Toggle buttons: show all jobs, or only those in the chosen statuses. Counts from /api/stats. */
export function StatusFilter({
  stats,
  selected,
  onChange,
}: {
  stats: Stats | null;
  selected: readonly JobStatus[];
  onChange: (statuses: JobStatus[]) => void;
}) {
  const toggle = (status: JobStatus) => {
    onChange(selected.includes(status) ? selected.filter((s) => s !== status) : [...selected, status]);
  };
  return (
    <div className="filter" role="group" aria-label="Show jobs by status">
      <button
        type="button"
        className="chip chip--all"
        aria-pressed={selected.length === 0}
        onClick={() => onChange([])}
        data-testid="filter-all"
      >
        All <span className="chip__count" data-testid="count-total">{stats ? stats.total : "–"}</span>
      </button>
      {JOB_STATUSES.map((status) => (
        <button
          key={status}
          type="button"
          className={`chip chip--${status}`}
          aria-pressed={selected.includes(status)}
          onClick={() => toggle(status)}
          data-testid={`filter-${status}`}
        >
          {STATUS_LABELS[status]}{" "}
          <span className="chip__count" data-testid={`count-${status}`}>
            {stats ? (stats.counts[status] ?? 0) : "–"}
          </span>
        </button>
      ))}
    </div>
  );
}
