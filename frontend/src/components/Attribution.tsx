import type { PhotoResult } from "../api/types";

/** "Photo by NAME on Unsplash", as Unsplash's guidelines ask (the links carry the utm parameters already). */
export function Attribution({ result, testId }: { result: PhotoResult; testId: string }) {
  return (
    <p className="attribution" data-testid={testId}>
      Photo by{" "}
      <a href={result.photographer_url} target="_blank" rel="noopener noreferrer">
        {result.photographer_name}
      </a>{" "}
      on{" "}
      <a href={result.unsplash_url} target="_blank" rel="noopener noreferrer">
        Unsplash
      </a>
      {result.source === "demo" ? <span className="attribution__demo"> (demo photo)</span> : null}
    </p>
  );
}

/** The photo's own page (on Unsplash; for a demo photo, the image file). */
export function PhotoPageLink({ result, className }: { result: PhotoResult; className?: string }) {
  return (
    <a className={className} href={result.photo_url} target="_blank" rel="noopener noreferrer">
      {result.source === "demo" ? "Open the image" : "View on Unsplash"}
    </a>
  );
}
