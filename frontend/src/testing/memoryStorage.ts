import type { KeyValueStorage } from "../outbox/outbox";

/** localStorage stand-in: a page reload is a new Outbox over the same instance. */
export class MemoryStorage implements KeyValueStorage {
  readonly data = new Map<string, string>();

  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  setItem(key: string, value: string): void {
    this.data.set(key, value);
  }

  removeItem(key: string): void {
    this.data.delete(key);
  }
}
