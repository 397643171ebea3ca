/** What the lockbox package exports to applications. */
export { watchSecrets, type SecretsSnapshot } from './watch.js';
