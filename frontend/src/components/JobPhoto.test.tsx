// @vitest-environment jsdom
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Job, PhotoResult } from "../api/types";
import { makeJob } from "../testing/jobs";
import { JobPhoto } from "./JobPhoto";
import { PhotoDialog } from "./PhotoDialog";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

// Served from a host the page's Content-Security-Policy may not list (a mirror of the API).
const result: PhotoResult = {
  photo_id: "abc",
  description: "Noodles in a bowl",
  alt_description: "a bowl of noodles with chopsticks",
  urls: {
    raw: "https://images.mirror.example/photo-1?ixid=XYZ",
    full: "https://images.mirror.example/photo-1?ixid=XYZ&q=85",
    regular: "https://images.mirror.example/photo-1?ixid=XYZ&w=1080",
    small: "https://images.mirror.example/photo-1?ixid=XYZ&w=400",
    thumb: "https://images.mirror.example/photo-1?ixid=XYZ&w=200",
  },
  width: 4000,
  height: 3000,
  color: "#a0b0c0",
  blur_hash: null,
  photographer_name: "Ada Cook",
  photographer_username: "adacook",
  photographer_url: "https://unsplash.com/@adacook?utm_source=jobs&utm_medium=referral",
  photo_url: "https://unsplash.com/photos/abc?utm_source=jobs&utm_medium=referral",
  unsplash_url: "https://unsplash.com/?utm_source=jobs&utm_medium=referral",
  source: "unsplash",
};
const job: Job = makeJob({ status: "completed", result });

const $ = (selector: string) => document.querySelector<HTMLElement>(selector);
const links = (element: Element | null) =>
  [...(element?.querySelectorAll("a") ?? [])].map((a) => [a.textContent, a.getAttribute("href")]);

/** What the browser does when the image cannot be loaded (network, or blocked by the CSP). */
function failToLoad(image: Element | null) {
  expect(image).not.toBeNull();
  act(() => {
    image?.dispatchEvent(new Event("error"));
  });
}

describe("a photo that cannot be loaded", () => {
  let root: Root;

  beforeEach(() => {
    const container = document.createElement("div");
    document.body.append(container);
    root = createRoot(container);
  });

  afterEach(() => {
    act(() => root.unmount());
    document.body.innerHTML = "";
  });

  it("shows, in the list, its credit and a link to its page instead of an empty frame", () => {
    const onOpen = vi.fn();
    act(() => root.render(<JobPhoto job={job} result={result} onOpen={onOpen} />));

    failToLoad($('[data-testid="photo"]'));

    expect($('[data-testid="photo"]')).toBeNull();
    const fallback = $('[data-testid="photo-failed"]');
    expect(fallback?.textContent).toContain("The image could not be loaded.");
    expect(links(fallback)).toEqual([["View on Unsplash", result.photo_url]]);
    expect($('[data-testid="attribution"]')?.textContent).toBe("Photo by Ada Cook on Unsplash");
    expect(links($('[data-testid="attribution"]'))).toEqual([
      ["Ada Cook", result.photographer_url],
      ["Unsplash", result.unsplash_url],
    ]);
    expect($(".photo__description")?.textContent).toBe("Noodles in a bowl");
    // Nothing to enlarge: no button that would open an empty dialog.
    expect(document.querySelector("button")).toBeNull();
    expect(onOpen).not.toHaveBeenCalled();
  });

  it("shows, in the larger view, its credit and the link to its page", () => {
    act(() => root.render(<PhotoDialog job={job} onClose={() => undefined} />));

    failToLoad($('[data-testid="photo-large"]'));

    expect($('[data-testid="photo-large"]')).toBeNull();
    expect($('[data-testid="photo-large-failed"]')?.textContent).toBe("The image could not be loaded.");
    expect($('[data-testid="dialog-attribution"]')?.textContent).toBe("Photo by Ada Cook on Unsplash");
    expect(links($(".photo-dialog__foot"))).toContainEqual(["View on Unsplash", result.photo_url]);
  });
});
