import { describe, expect, it } from "vitest";
import { delayChoices, formatAge, formatCountdown, formatDelay } from "./format";

describe("format", () => {
  it("writes delays and countdowns", () => {
    expect(formatDelay(5)).toBe("5 s");
    expect(formatDelay(60)).toBe("1 min");
    expect(formatDelay(150)).toBe("2 min 30 s");
    expect(formatCountdown(299_001)).toBe("5:00");
    expect(formatCountdown(7_000)).toBe("0:07");
    expect(formatCountdown(-50)).toBe("0:00");
  });

  it("writes ages", () => {
    expect(formatAge(1000)).toBe("just now");
    expect(formatAge(12_000)).toBe("12 s ago");
    expect(formatAge(3 * 60_000)).toBe("3 min ago");
  });

  it("lists the delays the server accepts", () => {
    const choices = delayChoices(5, 300, 5);
    expect(choices[0]).toBe(5);
    expect(choices[choices.length - 1]).toBe(300);
    expect(choices).toHaveLength(60);
    expect(delayChoices(7, 20, 5)).toEqual([10, 15, 20]);
    expect(delayChoices(5, 300, 0)).toEqual([]);
  });
});
