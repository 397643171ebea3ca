/**
 * Maps keyed by what users send (secret keys, label keys, sub-path keys, env variables): objects
 * without a prototype, so a key named like an Object.prototype member (`constructor`,
 * `toString`, `valueOf`, `hasOwnProperty`, `__proto__`) is an ordinary key: `in`, indexing,
 * assignment and spreading see only what the user gave. Objects that arrive from elsewhere
 * (protobufjs, JSON.parse, YAML) have a prototype: read them with `hasKey` / `ownValue`, never
 * with `in` or a bare index, and copy them with `userRecord(Object.entries(…))`, never with
 * Object.assign (which would run the `__proto__` setter).
 */
export function userRecord<T>(entries: Iterable<readonly [string, T]> = []): Record<string, T> {
  const out = Object.create(null) as Record<string, T>;
  for (const [key, value] of entries) out[key] = value;
  return out;
}

/** Whether `record` has `key` of its own (an inherited member is not a key). */
export function hasKey(record: object | undefined, key: string): boolean {
  return record !== undefined && record !== null && Object.hasOwn(record, key);
}

/** The value under `key` when it is the record's own, else undefined (never an inherited member). */
export function ownValue<T>(record: Record<string, T> | undefined, key: string): T | undefined {
  return hasKey(record, key) ? record![key] : undefined;
}
