import type { Announcement } from "../app/announcer";

/** Read out by screen readers when it changes: job status changes, creates, connection. */
export function LiveRegion({ announcement }: { announcement: Announcement | null }) {
  return (
    <div className="visually-hidden" aria-live="polite" aria-atomic="true" data-testid="announcer">
      {announcement ? <span key={announcement.id}>{announcement.text}</span> : null}
    </div>
  );
}
