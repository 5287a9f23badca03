import { useMemo, useState } from "react";
import type { Job, PhotoResult } from "../api/types";
import { blurHashDataUrl } from "../jobs/blurhash";
import { altText, aspectRatio, placeholderColor, thumbnailSource } from "../jobs/photo";
import { Attribution, PhotoPageLink } from "./Attribution";

/**
 * A completed job's photo (hotlinked), its credit, and a button to see it larger.
 * When the image cannot be loaded (offline, or blocked by the page's
 * Content-Security-Policy when the photos come from a host it does not
 * list), the frame says so and links to the photo's page instead; the
 * credit stays.
 */
export function JobPhoto({ job, result, onOpen }: { job: Job; result: PhotoResult; onOpen: (job: Job) => void }) {
  const [loaded, setLoaded] = useState(false);
  const [failed, setFailed] = useState(false);
  const source = thumbnailSource(result);
  const alt = altText(result);
  const ratio = aspectRatio(result);
  const caption = result.description ?? result.alt_description;
  // While the image loads: its dominant colour, and its BlurHash preview when there is one.
  const preview = useMemo(() => blurHashDataUrl(result.blur_hash, ratio), [result.blur_hash, ratio]);

  return (
    <figure className="photo">
      {failed ? (
        <div
          className="photo__frame photo__frame--failed"
          style={{ aspectRatio: String(ratio) }}
          data-testid="photo-failed"
        >
          <p className="photo__failed">
            <span>The image could not be loaded.</span> <PhotoPageLink result={result} />
          </p>
        </div>
      ) : (
        <button
          type="button"
          className="photo__frame"
          style={{
            backgroundColor: placeholderColor(result),
            backgroundImage: preview && !loaded ? `url(${preview})` : undefined,
            aspectRatio: String(ratio),
          }}
          onClick={() => onOpen(job)}
          aria-label={`Show larger: ${alt}`}
        >
          <img
            data-testid="photo"
            className={`photo__img${loaded ? " photo__img--loaded" : ""}`}
            src={source.src}
            srcSet={source.srcSet}
            alt={alt}
            width={400}
            height={Math.round(400 / ratio)}
            decoding="async"
            onLoad={() => setLoaded(true)}
            onError={() => setFailed(true)}
          />
          {result.source === "demo" ? (
            <span className="photo__demo" data-testid="demo-label">
              demo
            </span>
          ) : null}
        </button>
      )}
      <figcaption className="photo__caption">
        {caption ? <p className="photo__description">{caption}</p> : null}
        <Attribution result={result} testId="attribution" />
      </figcaption>
    </figure>
  );
}
