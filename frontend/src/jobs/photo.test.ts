import { describe, expect, it } from "vitest";
import type { PhotoResult } from "../api/types";
import { altText, aspectRatio, placeholderColor, resizedUrl, thumbnailSource } from "./photo";

const photo: PhotoResult = {
  photo_id: "p1",
  description: "Fresh bread",
  alt_description: null,
  urls: {
    raw: "https://images.unsplash.com/photo-123?ixid=M3wx&ixlib=rb-4.0.3",
    full: "https://images.unsplash.com/photo-123?ixid=M3wx&q=85",
    regular: "https://images.unsplash.com/photo-123?ixid=M3wx&w=1080",
    small: "https://images.unsplash.com/photo-123?ixid=M3wx&w=400",
    thumb: "https://images.unsplash.com/photo-123?ixid=M3wx&w=200",
  },
  width: 3000,
  height: 2000,
  color: "#c0a080",
  blur_hash: null,
  photographer_name: "Bo Baker",
  photographer_username: "bobaker",
  photographer_url: "https://unsplash.com/@bobaker?utm_source=x&utm_medium=referral",
  photo_url: "https://unsplash.com/photos/p1?utm_source=x&utm_medium=referral",
  unsplash_url: "https://unsplash.com/?utm_source=x&utm_medium=referral",
  source: "unsplash",
};

describe("photo helpers", () => {
  it("resizes from urls.raw keeping ixid", () => {
    const url = new URL(resizedUrl(photo.urls.raw, 800));
    expect(url.searchParams.get("ixid")).toBe("M3wx");
    expect(url.searchParams.get("w")).toBe("800");
    expect(url.searchParams.get("auto")).toBe("format");
  });

  it("uses urls.small, with a raw-derived 2x only for Unsplash images", () => {
    expect(thumbnailSource(photo).src).toBe(photo.urls.small);
    expect(thumbnailSource(photo).srcSet).toContain("w=800");
    const demo = { ...photo, source: "demo" as const, urls: { ...photo.urls, raw: "/static/demo/a.svg", small: "/static/demo/a.svg" } };
    expect(thumbnailSource(demo)).toEqual({ src: "/static/demo/a.svg" });
  });

  it("prefers alt_description, then description, then a generic text", () => {
    expect(altText({ ...photo, alt_description: "bread on a board" })).toBe("bread on a board");
    expect(altText(photo)).toBe("Fresh bread");
    expect(altText({ ...photo, description: null })).toBe("Food photo by Bo Baker");
  });

  it("bounds the aspect ratio and accepts only hex colours", () => {
    expect(aspectRatio(photo)).toBe(1.5);
    expect(aspectRatio({ ...photo, width: 100, height: 1000 })).toBe(0.6);
    expect(aspectRatio({ ...photo, width: 0 })).toBe(1);
    expect(placeholderColor(photo)).toBe("#c0a080");
    expect(placeholderColor({ ...photo, color: "red;background:url(x)" })).toBeUndefined();
    expect(placeholderColor({ ...photo, color: null })).toBeUndefined();
  });
});
