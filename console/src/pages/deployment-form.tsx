/**
 * Create or edit a deployment: name, description and the secrets it mounts (a multi-select of the
 * secrets visible in the scope, tenant-wide ones included). Every change of the selection asks
 * the API's own check (POST /v1/admin/deployments:check), so clashes show, one line each, before
 * saving; Save stays off while there are any.
 */
import { useEffect, useState } from 'preact/hooks';
import { call, seg } from '../api';
import { ErrorLine, PageTitle } from '../components';
import { useSession } from '../context';
import { go, href } from '../router';
import type { Deployment, Secret } from '../types';

interface Check {
  ok: boolean;
  missing: string[];
  collisions: string[];
}

/** Every secret visible in the scope (the list pages through them all; a deployment mounts at most 100). */
async function visibleSecrets(scope: string): Promise<Secret[]> {
  const all: Secret[] = [];
  let cursor = '';
  do {
    const page = await call<{ secrets: Secret[]; next_cursor: string }>('GET', '/v1/admin/secrets', { scope, query: { limit: 1000, cursor } });
    all.push(...page.secrets);
    cursor = page.next_cursor;
  } while (cursor);
  return all;
}

export function DeploymentForm({ name: editing }: { name?: string }) {
  const { scope } = useSession();
  const [name, setName] = useState(editing ?? '');
  const [description, setDescription] = useState('');
  const [chosen, setChosen] = useState<string[]>([]);
  const [current, setCurrent] = useState<Deployment>();
  const [secrets, setSecrets] = useState<Secret[]>();
  const [check, setCheck] = useState<Check>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    visibleSecrets(scope).then(setSecrets, setError);
    if (editing)
      call<Deployment>('GET', `/v1/admin/deployments/${seg(editing)}`, { scope }).then((d) => {
        setCurrent(d);
        setDescription(d.description);
        setChosen(d.secrets);
      }, setError);
  }, [scope, editing]);

  useEffect(() => {
    let stale = false;
    if (!chosen.length) return setCheck(undefined);
    call<Check>('POST', '/v1/admin/deployments:check', { scope, body: { secrets: chosen } }).then((c) => !stale && setCheck(c), (e) => !stale && setError(e));
    return () => {
      stale = true;
    };
  }, [chosen.join('\n')]);

  const toggle = (secret: string, on: boolean) => setChosen(on ? [...chosen, secret] : chosen.filter((s) => s !== secret));
  const save = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      if (editing) await call('PATCH', `/v1/admin/deployments/${seg(editing)}`, { scope, body: { secrets: chosen, description, expected_version: current?.version } });
      else await call('POST', '/v1/admin/deployments', { scope, body: { name: name.trim(), secrets: chosen, description } });
      go('deployments', editing ?? name.trim());
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  // A name listed by the deployment but no longer visible (deleted with force) stays choosable, to remove it.
  const names = [...new Set([...(secrets ?? []).map((s) => s.name), ...chosen])].sort();
  const tenantWide = new Set((secrets ?? []).filter((s) => s.scope.resource_group === '*').map((s) => s.name));
  return (
    <section>
      <PageTitle>{editing ? `Edit deployment ${editing}` : 'Create deployment'}</PageTitle>
      <form class="card form" onSubmit={save}>
        <div class="field">
          <label for="deployment-name">Name</label>
          <input id="deployment-name" required value={name} disabled={Boolean(editing)} onInput={(e) => setName(e.currentTarget.value)} autoComplete="off" />
        </div>
        <div class="field">
          <label for="deployment-description">Description</label>
          <input id="deployment-description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </div>
        <fieldset>
          <legend>Secrets</legend>
          {secrets === undefined ? <p class="muted">Loading…</p> : null}
          <ul class="choices">
            {names.map((s, i) => (
              <li key={s}>
                <label class="inline">
                  <input type="checkbox" id={`secret-${i}`} checked={chosen.includes(s)} onChange={(e) => toggle(s, e.currentTarget.checked)} /> {s}
                  {tenantWide.has(s) ? <span class="tag">tenant-wide</span> : null}
                </label>
              </li>
            ))}
          </ul>
          {secrets?.length === 0 ? <p class="muted">No secrets in this scope yet.</p> : null}
        </fieldset>
        <div aria-live="polite">
          {check && !check.ok ? (
            <div class="card warning" role="alert">
              <p>These secrets cannot be mounted together:</p>
              <ul class="clashes">
                {check.missing.map((m) => (
                  <li key={`m-${m}`}>secret "{m}" not found</li>
                ))}
                {check.collisions.map((c) => (
                  <li key={c}>{c}</li>
                ))}
              </ul>
            </div>
          ) : check?.ok ? (
            <p class="ok">No clashes.</p>
          ) : null}
        </div>
        <ErrorLine error={error} />
        <div class="actions">
          <button type="submit" disabled={busy || (check !== undefined && !check.ok)}>
            {editing ? 'Save changes' : 'Create'}
          </button>
          <a class="button secondary" href={editing ? href('deployments', editing) : href('deployments')}>
            Cancel
          </a>
        </div>
      </form>
    </section>
  );
}
