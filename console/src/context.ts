/** What every page knows: who is signed in, the chosen scope, the templates. */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Identity, Templates } from './types';

export interface Session {
  identity: Identity;
  templates: Templates;
  /** The chosen resource group: "" main tenant scope, "*" tenant-wide. */
  scope: string;
  /** Whether the token may write secrets in the chosen scope. */
  canWrite: boolean;
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  return useContext(SessionContext)!;
}
