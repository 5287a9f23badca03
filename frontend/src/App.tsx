import { useCallback, useEffect, useState } from "react";
import type { Job } from "./api/types";
import type { Controller } from "./app/controller";
import { useView } from "./app/hooks";
import { ConnectionStatus } from "./components/ConnectionStatus";
import { JobList } from "./components/JobList";
import { LiveRegion } from "./components/LiveRegion";
import { NewJobForm } from "./components/NewJobForm";
import { Notices } from "./components/Notices";
import { PhotoDialog } from "./components/PhotoDialog";
import { StatusFilter } from "./components/StatusFilter";

export function App({ controller }: { controller: Controller }) {
  const view = useView(controller);
  const [opened, setOpened] = useState<Job | null>(null);
  const closePhoto = useCallback(() => setOpened(null), []);
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
          <NewJobForm config={view.config} onCreate={(delay) => controller.createJob(delay)} />
          <StatusFilter
            stats={view.stats}
            selected={view.statuses}
            onChange={(statuses) => controller.setFilter(statuses)}
          />
        </section>

        <Notices notices={view.notices} onDismiss={(id) => controller.dismissNotice(id)} />

        <JobList
          view={view}
          clock={controller.clock}
          onOpenPhoto={setOpened}
          onLoadMore={() => void controller.loadMore()}
          onRetry={() => controller.retryList()}
          onDismissRejected={(key) => controller.dismissRejected(key)}
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
      {opened?.result ? <PhotoDialog job={opened} onClose={closePhoto} /> : null}
    </div>
  );
}

/** "food_jobs" -> "Food jobs": the configured name doubles as an identifier. */
function displayName(name: string | undefined): string {
  const words = (name ?? "").replace(/[_-]+/g, " ").trim();
  if (words === "") return "Food photo jobs";
  return words.charAt(0).toUpperCase() + words.slice(1);
}
