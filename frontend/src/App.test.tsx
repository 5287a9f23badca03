// @vitest-environment jsdom
import { QueryClientProvider } from "@tanstack/react-query";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { App } from "./App";
import type { Job } from "./api/types";
import { setupServices } from "./testing/fakeServer";
import { makeJob } from "./testing/jobs";

// Rendering runs as in a browser (React schedules it); tests wait for the outcome.
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;

const completed: Job = makeJob({
  status: "completed",
  updated_at: "2024-05-01T12:00:31.000Z",
  result: {
    photo_id: "abc",
    description: "Noodles in a bowl",
    alt_description: "a bowl of noodles with chopsticks",
    urls: {
      raw: "https://images.unsplash.com/photo-1?ixid=XYZ",
      full: "https://images.unsplash.com/photo-1?ixid=XYZ&q=85",
      regular: "https://images.unsplash.com/photo-1?ixid=XYZ&w=1080",
      small: "https://images.unsplash.com/photo-1?ixid=XYZ&w=400",
      thumb: "https://images.unsplash.com/photo-1?ixid=XYZ&w=200",
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
  },
});
const failed: Job = makeJob({ status: "failed", error: { code: "unsplash_auth", message: "The Unsplash access key was refused." } });

/** Polls until `check` passes (the page updates asynchronously). */
async function eventually(check: () => void, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

const $ = (selector: string) => document.querySelector<HTMLElement>(selector);
const $$ = (selector: string) => [...document.querySelectorAll<HTMLElement>(selector)];

describe("the page", () => {
  let root: Root;
  let env: ReturnType<typeof setupServices>;

  beforeEach(() => {
    env = setupServices();
    env.server.jobs = [completed, failed];
    const container = document.createElement("div");
    document.body.append(container);
    root = createRoot(container);
    void env.services.start();
    root.render(
      <QueryClientProvider client={env.services.client}>
        <App services={env.services} />
      </QueryClientProvider>,
    );
  });

  afterEach(() => {
    root.unmount();
    env.services.stop();
    document.body.innerHTML = "";
  });

  it("offers the test hooks browser tests rely on", async () => {
    await eventually(() => expect($$('[data-testid="job-row"]')).toHaveLength(2));
    expect($('[data-testid="connection-status"]')?.dataset.state).toBe("online");
    expect($('[data-testid="outbox-count"]')?.textContent).toBe("0");
    const rows = $$('[data-testid="job-row"]');
    expect(rows.map((row) => [row.dataset.jobId, row.dataset.status])).toEqual([
      [failed.id, "failed"],
      [completed.id, "completed"],
    ]);
    const photo = $('[data-testid="photo"]') as HTMLImageElement;
    expect(photo.getAttribute("src")).toBe(completed.result?.urls.small);
    expect(photo.alt).toBe("a bowl of noodles with chopsticks");
    expect(photo.parentElement?.style.backgroundColor).toBe("rgb(160, 176, 192)");
    const attribution = $('[data-testid="attribution"]');
    expect(attribution?.textContent).toBe("Photo by Ada Cook on Unsplash");
    const links = [...(attribution?.querySelectorAll("a") ?? [])].map((a) => a.getAttribute("href"));
    expect(links).toEqual([completed.result?.photographer_url, completed.result?.unsplash_url]);
    expect(rows[0]?.textContent).toContain("The Unsplash access key was refused.");
    expect($('[aria-live="polite"]')).not.toBeNull();
  });

  it("shows a new job at once and counts it in the outbox until the server has it", async () => {
    await eventually(() => expect($$('[data-testid="job-row"]')).toHaveLength(2));
    env.server.reachable = false;
    $('[data-testid="new-job"]')?.click();
    await eventually(() => expect($$('[data-testid="job-row"]')).toHaveLength(3));
    await eventually(() => expect($('[data-testid="outbox-count"]')?.textContent).toBe("1"));
    await eventually(() => expect($('[data-testid="connection-status"]')?.dataset.state).toBe("offline"));
    expect($$('[data-testid="job-row"]')[0]?.dataset.status).toBe("queued");

    env.server.reachable = true;
    window.dispatchEvent(new Event("online"));
    await eventually(() => expect($('[data-testid="outbox-count"]')?.textContent).toBe("0"), 5000);
    await eventually(() => expect($$('[data-testid="job-row"]').map((r) => r.dataset.status)).toContain("pending"));
    expect($$('[data-testid="job-row"]')).toHaveLength(3);
  });

  it("opens the larger photo and closes it with Escape, returning focus", async () => {
    await eventually(() => expect($('[data-testid="photo"]')).not.toBeNull());
    const opener = $('[data-testid="photo"]')?.closest("button") as HTMLButtonElement;
    opener.focus();
    opener.click();
    await eventually(() => expect($('[data-testid="photo-dialog"]')).not.toBeNull());
    const dialog = $('[data-testid="photo-dialog"]');
    expect(($('[data-testid="photo-large"]') as HTMLImageElement).src).toBe(completed.result?.urls.regular);
    expect(dialog?.contains(document.activeElement)).toBe(true);

    dialog?.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    await eventually(() => expect($('[data-testid="photo-dialog"]')).toBeNull());
    expect(document.activeElement).toBe(opener);
  });

  it("filters by status", async () => {
    await eventually(() => expect($$('[data-testid="job-row"]')).toHaveLength(2));
    $('[data-testid="filter-failed"]')?.click();
    await eventually(() => expect($$('[data-testid="job-row"]').map((r) => r.dataset.status)).toEqual(["failed"]));
    expect($('[data-testid="filter-failed"]')?.getAttribute("aria-pressed")).toBe("true");
  });
});
