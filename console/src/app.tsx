/**
 * The console's frame: sign-in until a token is accepted, then the header (scope picker, pages
 * the token may use, sign out) and the page the #route names. Any 401 from the API ends the
 * session and shows sign-in again.
 */
import { useEffect, useState } from 'preact/hooks';
import { call, whenUnauthorized } from './api';
import { ErrorLine } from './components';
import { SessionContext } from './context';
import { AuditPage } from './pages/audit';
import { DeploymentDetails } from './pages/deployment-details';
import { DeploymentForm } from './pages/deployment-form';
import { DeploymentsPage } from './pages/deployments';
import { ScopePicker } from './pages/scope-picker';
import { SecretDetails } from './pages/secret-details';
import { SecretForm } from './pages/secret-form';
import { SecretsPage } from './pages/secrets';
import { SignIn } from './pages/sign-in';
import { TokensPage } from './pages/tokens';
import { go, href, useRoute } from './router';
import { forgetSession, storedScope, storedToken, storeScope } from './session';
import type { Identity, Templates } from './types';

function Page({ route }: { route: string[] }) {
  const [section, name, action] = route;
  switch (section) {
    case 'new-secret':
      return <SecretForm />;
    case 'new-deployment':
      return <DeploymentForm />;
    case 'deployments':
      if (name === undefined) return <DeploymentsPage />;
      return action === 'edit' ? <DeploymentForm name={name} /> : <DeploymentDetails name={name} />;
    case 'audit':
      return <AuditPage />;
    case 'tokens':
      return <TokensPage />;
    case 'secrets':
      if (name === undefined) return <SecretsPage />;
      return action === 'edit' ? <SecretForm name={name} /> : <SecretDetails name={name} />;
    default:
      return <SecretsPage />;
  }
}

export function App() {
  const [signedIn, setSignedIn] = useState(Boolean(storedToken()));
  const [identity, setIdentity] = useState<Identity>();
  const [templates, setTemplates] = useState<Templates>();
  const [scope, setScope] = useState<string | undefined>(storedScope());
  const [error, setError] = useState<unknown>();
  const route = useRoute();

  const signOut = () => {
    forgetSession();
    setIdentity(undefined);
    setScope(undefined);
    setSignedIn(false);
  };
  useEffect(() => whenUnauthorized(signOut), []);
  useEffect(() => {
    if (!signedIn) return;
    Promise.all([call<Identity>('GET', '/v1/whoami'), call<Templates>('GET', '/v1/templates')]).then(([who, t]) => {
      setIdentity(who);
      setTemplates(t);
      const allowed = who.scopes.map((s) => s.resource_group);
      if (scope === undefined || (!allowed.includes(scope) && !who.any_resource_group)) changeScope(allowed[0] ?? '');
    }, setError);
  }, [signedIn]);

  const changeScope = (group: string) => {
    storeScope(group);
    setScope(group);
  };

  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  if (!identity || !templates || scope === undefined) return <main id="main">{error ? <ErrorLine error={error} /> : <p class="muted">Loading…</p>}</main>;
  const chosen = identity.scopes.find((s) => s.resource_group === scope);
  const canWrite = chosen ? chosen.write : identity.may.write && identity.role === 'tenant-admin';
  const section = route[0] ?? 'secrets';
  const nav: Array<[string, string, boolean]> = [
    ['secrets', 'Secrets', true],
    ['deployments', 'Deployments', true],
    ['audit', 'Audit', identity.may.audit],
    ['tokens', 'Tokens', identity.may.tokens],
  ];
  return (
    <SessionContext.Provider value={{ identity, templates, scope, canWrite }}>
      <header class="top">
        <a class="brand" href={href('secrets')}>
          lockbox
        </a>
        <nav aria-label="Pages">
          <ul>
            {nav
              .filter(([, , shown]) => shown)
              .map(([id, label]) => (
                <li key={id}>
                  <a href={href(id)} aria-current={section === id ? 'page' : undefined}>
                    {label}
                  </a>
                </li>
              ))}
          </ul>
        </nav>
        <ScopePicker identity={identity} scope={scope} onChange={(g) => (changeScope(g), go(section))} />
        <div class="who">
          <span title={`token ${identity.token_id}`}>
            {identity.role} · {identity.tenant}
          </span>
          <button type="button" class="secondary" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">
        <Page key={`${scope}/${route.join('/')}`} route={route} />
      </main>
    </SessionContext.Provider>
  );
}
