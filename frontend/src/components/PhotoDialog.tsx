import { useEffect, useId, useRef, useState, type KeyboardEvent, type MouseEvent, type SyntheticEvent } from "react";
import type { Job } from "../api/types";
import { altText, aspectRatio, placeholderColor } from "../jobs/photo";
import { Attribution, PhotoPageLink } from "./Attribution";

const FOCUSABLE = 'a[href], button:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * The larger view of a photo: a modal dialog. Escape or the close button
 * closes it; focus stays inside while it is open and goes back to whatever
 * opened it.
 */
export function PhotoDialog({ job, onClose }: { job: Job; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const closeRef = useRef<HTMLButtonElement>(null);
  const titleId = useId();
  const [failed, setFailed] = useState(false);
  const result = job.result;

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    if (!dialog.open) {
      if (typeof dialog.showModal === "function") dialog.showModal();
      else dialog.setAttribute("open", "");
    }
    closeRef.current?.focus();
    return () => {
      if (dialog.open && typeof dialog.close === "function") dialog.close();
      if (opener?.isConnected) opener.focus();
    };
  }, []);

  if (!result) return null;

  // Escape fires "cancel": let React state close the dialog, so focus is restored in one place.
  const onCancel = (event: SyntheticEvent) => {
    event.preventDefault();
    onClose();
  };

  const onKeyDown = (event: KeyboardEvent<HTMLDialogElement>) => {
    if (event.key === "Escape") {
      event.preventDefault();
      onClose();
      return;
    }
    if (event.key !== "Tab") return;
    const focusable = [...(ref.current?.querySelectorAll<HTMLElement>(FOCUSABLE) ?? [])];
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (!first || !last) return;
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  };

  // A click on the backdrop (the dialog element itself, outside its content) closes it.
  const onClick = (event: MouseEvent<HTMLDialogElement>) => {
    if (event.target === ref.current) onClose();
  };

  const ratio = aspectRatio(result);
  return (
    <dialog
      ref={ref}
      className="photo-dialog"
      aria-labelledby={titleId}
      onCancel={onCancel}
      onKeyDown={onKeyDown}
      onClick={onClick}
      data-testid="photo-dialog"
    >
      <div className="photo-dialog__content">
        <div className="photo-dialog__head">
          <h2 id={titleId} className="photo-dialog__title">
            {result.description ?? result.alt_description ?? "Photo"}
          </h2>
          <button ref={closeRef} type="button" className="btn btn--ghost" onClick={onClose} aria-label="Close">
            ✕
          </button>
        </div>
        <div className="photo-dialog__frame" style={{ backgroundColor: placeholderColor(result), aspectRatio: String(ratio) }}>
          {failed ? (
            <p className="photo__failed" data-testid="photo-large-failed">
              The image could not be loaded.
            </p>
          ) : (
            <img
              src={result.urls.regular}
              alt={altText(result)}
              width={1080}
              height={Math.round(1080 / ratio)}
              data-testid="photo-large"
              onError={() => setFailed(true)}
            />
          )}
          {result.source === "demo" ? <span className="photo__demo">demo</span> : null}
        </div>
        <div className="photo-dialog__foot">
          <Attribution result={result} testId="dialog-attribution" />
          <PhotoPageLink result={result} className="photo-dialog__link" />
        </div>
      </div>
    </dialog>
  );
}
