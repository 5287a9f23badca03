export interface Notice {
  id: string;
  text: string;
}


export function Notices({ notices, onDismiss }: { notices: readonly Notice[]; onDismiss: (id: string) => void }) {
  if (notices.length === 0) return null;
  return (
    <ul className="notices" aria-label="Messages">
      {notices.map((notice) => (
        <li key={notice.id} className="notice" data-testid="notice">
          <span className="notice__icon" aria-hidden="true">
            !
          </span>
          <span className="notice__text">{notice.text}</span>
          <button type="button" className="btn btn--ghost btn--small" onClick={() => onDismiss(notice.id)}>
            Dismiss
          </button>
        </li>
      ))}
    </ul>
  );
}
