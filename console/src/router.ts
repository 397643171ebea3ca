/**
 * Hash routing (`#/secrets/NAME`): the daemon serves one page, and a route never reaches the
 * server, so nothing a user types into a route is sent anywhere. Segments are URI-encoded.
 */
import { useEffect, useState } from 'preact/hooks';

export function currentRoute(): string[] {
  const path = location.hash.replace(/^#\/?/, '');
  return path ? path.split('/').map((s) => decodeURIComponent(s)) : [];
}

export function useRoute(): string[] {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const update = () => setRoute(currentRoute());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}

/** The href of a route, e.g. href('secrets', name). */
export function href(...segments: string[]): string {
  return '#/' + segments.map(encodeURIComponent).join('/');
}

export function go(...segments: string[]): void {
  location.hash = href(...segments).slice(1);
}
