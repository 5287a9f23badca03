import { useQuery } from "@tanstack/react-query";
import { useCallback, useEffect, useState } from "react";
import type { Job } from "./api/types";
import type { Services } from "./app/services";
import { usePage } from "./app/usePage";
import { ConnectionStatus } from "./components/ConnectionStatus";
import { JobList } from "./components/JobList";
import { LiveRegion } from "./components/LiveRegion";
import { NewJobForm } from "./components/NewJobForm";
import { Notices } from "./components/Notices";
import { PhotoDialog } from "./components/PhotoDialog";
import { StatusFilter } from "./components/StatusFilter";

export function App({ services }: { services: Services }) {
  const { view, actions } = usePage(services);
  // The dialog shows the job's own query: the newest copy, kept current by events.
  const [openedId, setOpenedId] = useState<string | null>(null);
  const opened = useQuery({ ...services.cache.jobQuery(openedId ?? ""), enabled: openedId !== null }).data;
  const openPhoto = useCallback((job: Job) => setOpenedId(job.id), []);
  const closePhoto = useCallback(() => setOpenedId(null), []);
  const appName = displayName(view.config?.app_name);
  useEffect(() => {
    document.title = appName;
  }, [appName]);

  return (
    <div className="page">
      <a className="skip-link" href="#jobs">
        Skip to jobs
      </a>
      <header className="masthead">
        <div className="masthead__title">
          <h1>{appName}</h1>
          <p className="masthead__tagline">Each job waits, then fetches one random food photo.</p>
        </div>
        <div className="masthead__status">
          <ConnectionStatus view={view} />
          <span className={`outbox${view.outboxCount > 0 ? " outbox--busy" : ""}`} title="Creates not yet confirmed by the server">
            Unsent: <span data-testid="outbox-count">{view.outboxCount}</span>
          </span>
        </div>
      </header>

      <main className="content">
        <section className="toolbar" aria-label="Create and filter jobs">
          <NewJobForm config={view.config} onCreate={actions.createJob} />
          <StatusFilter
            stats={view.stats}
            selected={view.statuses}
            onChange={actions.setFilter}
          />
        </section>

        <Notices
          notices={view.pendingCreates
            .filter((create) => create.state === "rejected")
            .map((create) => ({ id: create.key, text: `A new job could not be created: ${create.message}` }))}
          onDismiss={actions.dismissRejected}
        />

        <JobList
          view={view}
          clock={services.clock}
          onOpenPhoto={openPhoto}
          onLoadMore={actions.loadMore}
          onRetry={actions.retryList}
          onDismissRejected={actions.dismissRejected}
        />
      </main>

      {view.config?.photo_source === "demo" ? (
        <footer className="footer">
          <p>
            Photos come from a built-in <strong>demo</strong> set: the server has no Unsplash access key.
          </p>
        </footer>
      ) : null}

      <LiveRegion announcement={view.announcement} />
      {openedId !== null && opened?.result ? <PhotoDialog job={opened} onClose={closePhoto} /> : null}
    </div>
  );
}

/** "food_jobs" -> "Food jobs": the configured name doubles as an identifier. */
function displayName(name: string | undefined): string {
  const words = (name ?? "").replace(/[_-]+/g, " ").trim();
  if (words === "") return "Food photo jobs";
  return words.charAt(0).toUpperCase() + words.slice(1);
}
