/** How a job's photo is shown: sized URLs, alt text, credit. */
import type { PhotoResult } from "../api/types";

/**
 * A resized Unsplash URL: `urls.raw` plus imgix parameters. Existing
 * parameters (the `ixid` that Unsplash asks to keep in particular) stay.
 */
export function resizedUrl(raw: string, width: number): string {
  try {
    const url = new URL(raw);
    url.searchParams.set("w", String(width));
    url.searchParams.set("auto", "format");
    url.searchParams.set("fit", "max");
    url.searchParams.set("q", "75");
    return url.toString();
  } catch {
    const separator = raw.includes("?") ? "&" : "?";
    return `${raw}${separator}w=${width}&auto=format&fit=max&q=75`;
  }
}

/** Whether `urls.raw` accepts imgix resizing parameters (demo images may not). */
function resizable(photo: PhotoResult): boolean {
  if (photo.source !== "unsplash") return false;
  try {
    return new URL(photo.urls.raw).hostname.endsWith("unsplash.com");
  } catch {
    return false;
  }
}

export interface ImageSource {
  src: string;
  srcSet?: string;
}

/** The list thumbnail: `urls.small` (400 px wide), with a sharper one for dense screens. */
export function thumbnailSource(photo: PhotoResult): ImageSource {
  if (!resizable(photo)) return { src: photo.urls.small };
  return { src: photo.urls.small, srcSet: `${photo.urls.small} 1x, ${resizedUrl(photo.urls.raw, 800)} 2x` };
}

export function altText(photo: PhotoResult): string {
  const text = photo.alt_description ?? photo.description;
  if (text && text.trim() !== "") return text.trim();
  return `Food photo by ${photo.photographer_name}`;
}

/** Height / width, bounded so odd sizes never make a huge or flat box. */
export function aspectRatio(photo: PhotoResult): number {
  if (!(photo.width > 0) || !(photo.height > 0)) return 1;
  return Math.min(Math.max(photo.width / photo.height, 0.6), 2);
}

/** A CSS colour for the placeholder, only when it is a plain hex colour. */
export function placeholderColor(photo: PhotoResult): string | undefined {
  return photo.color && /^#[0-9a-fA-F]{3,8}$/.test(photo.color) ? photo.color : undefined;
}
