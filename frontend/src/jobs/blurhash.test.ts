import { describe, expect, it } from "vitest";
import { decodeBlurHash, isBlurHash } from "./blurhash";

// The example of the BlurHash documentation.
const HASH = "LEHV6nWB2yk8pyo0adR*.7kCMdnj";

describe("BlurHash", () => {
  it("recognises well-formed hashes", () => {
    expect(isBlurHash(HASH)).toBe(true);
    expect(isBlurHash(HASH.slice(0, -1))).toBe(false);
    expect(isBlurHash("LEHV6nWB2yk8pyo0adR*.7kCMdn\u00e9")).toBe(false);
    expect(isBlurHash("")).toBe(false);
  });

  it("decodes to opaque pixels whose average is the hash's base colour", () => {
    const width = 32;
    const height = 32;
    const pixels = decodeBlurHash(HASH, width, height);
    expect(pixels).toHaveLength(width * height * 4);
    let r = 0;
    let g = 0;
    let b = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      r += pixels[i] ?? 0;
      g += pixels[i + 1] ?? 0;
      b += pixels[i + 2] ?? 0;
      expect(pixels[i + 3]).toBe(255);
    }
    const n = width * height;
    // The DC component "HV6n" is 0x979695: rgb(151, 150, 149).
    expect(Math.abs(r / n - 151)).toBeLessThan(20);
    expect(Math.abs(g / n - 150)).toBeLessThan(20);
    expect(Math.abs(b / n - 149)).toBeLessThan(20);
    // Not a flat colour: the AC components add detail.
    expect(new Set(Array.from(pixels.filter((_, i) => i % 4 === 0))).size).toBeGreaterThan(10);
  });

  it("refuses a malformed hash", () => {
    expect(() => decodeBlurHash("nope", 4, 4)).toThrow();
  });
});
