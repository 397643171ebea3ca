/**
 * Path rules for everything that becomes a path under $BENTOML_HOME. The daemon applies them when
 * a secret is written and the agent applies them again before it writes anything, whatever the
 * daemon sent: a relative path of plain segments, no "..", no absolute path, no NUL, and no
 * segment starting with ".." (those names are reserved for the atomic writer: `..data`,
 * `..<timestamp>`, `..version`).
 */
import { limits } from './limits.js';

/** Returns why `path` is not an acceptable relative mount path, or undefined when it is. */
export function relativePathProblem(path: string): string | undefined {
  if (path.length === 0) return 'must not be empty';
  if (path.length > limits.maxPathLength) return `must be at most ${limits.maxPathLength} characters`;
  if (path.includes('\0')) return 'must not contain NUL';
  if (path.includes('\\')) return 'must use "/" as separator, not "\\"';
  if (path.startsWith('/')) return 'must be relative (no leading "/")';
  if (/^[A-Za-z]:/.test(path)) return 'must be relative (no drive letter)';
  for (const segment of path.split('/')) {
    if (segment === '') return 'must not contain empty segments ("//" or a trailing "/")';
    if (segment === '.' || segment === '..') return `must not contain a "${segment}" segment`;
    if (segment.startsWith('..')) return `segment "${segment}" must not start with ".." (reserved)`;
    // Control characters make paths that tools print ambiguously.
    if (/[\u0000-\u001f\u007f]/.test(segment)) return 'must not contain control characters';
  }
  return undefined;
}

/** A file name for one key of a file mount: one segment. */
export function fileNameProblem(name: string): string | undefined {
  if (name.includes('/')) return 'must not contain "/"';
  return relativePathProblem(name);
}
