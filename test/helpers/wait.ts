/**
 * Waiting for a state instead of a time: the tests share two cores with other test files, so a
 * fixed sleep is either too short (a red run that is noise) or proves nothing (a slow bug passes).
 * The deadline only ends a test that would otherwise hang; it is not a speed requirement.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Resolves once `condition` holds (checked every 20 ms), with how long that took in ms. */
export async function until(what: string, condition: () => boolean | Promise<boolean>, ms = 20_000): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for: ${what}`);
    await sleep(20);
  }
  return Date.now() - started;
}
