/** Tokens (admins): create (the token is shown once, with a copy button), list, revoke. */
import { useEffect, useState } from 'preact/hooks';
import { call, seg } from '../api';
import { ErrorLine, Options, PageTitle, Table, Time } from '../components';
import type { TokenInfo } from '../types';

const ROLES = ['reader', 'viewer', 'rg-admin', 'tenant-admin', 'agent'];

export function TokensPage() {
  const [tokens, setTokens] = useState<TokenInfo[]>();
  const [form, setForm] = useState({ role: 'reader', groups: '', deployment: '', deploymentGroup: '', description: '', ttlHours: '' });
  const [created, setCreated] = useState<{ token: string; info: TokenInfo }>();
  const [copied, setCopied] = useState(false);
  const [confirmRevoke, setConfirmRevoke] = useState('');
  const [error, setError] = useState<unknown>();

  const load = () => call<{ tokens: TokenInfo[] }>('GET', '/v1/admin/tokens').then((t) => setTokens(t.tokens), setError);
  useEffect(() => void load(), []);
  const set = (name: keyof typeof form) => (e: Event) => setForm({ ...form, [name]: (e.currentTarget as HTMLInputElement).value });

  const create = async (event: Event) => {
    event.preventDefault();
    setError(undefined);
    try {
      const groups = form.groups.split(',').map((g) => g.trim()).filter(Boolean);
      const body = {
        role: form.role,
        description: form.description,
        ...(form.role === 'agent' ? { deployment: form.deployment.trim(), deployment_resource_group: form.deploymentGroup.trim() } : groups.length ? { resource_groups: groups } : {}),
        ...(form.ttlHours ? { ttl_seconds: Math.round(Number(form.ttlHours) * 3600) } : {}),
      };
      setCreated(await call<{ token: string; info: TokenInfo }>('POST', '/v1/admin/tokens', { body }));
      setCopied(false);
      void load();
    } catch (e) {
      setError(e);
    }
  };
  const revoke = async (id: string) => {
    setError(undefined);
    try {
      await call('DELETE', `/v1/admin/tokens/${seg(id)}`);
      setConfirmRevoke('');
      void load();
    } catch (e) {
      setError(e);
    }
  };

  return (
    <section>
      <PageTitle>Tokens</PageTitle>
      {created ? (
        <div class="card warning" role="group" aria-label="New token">
          <p>
            Token <code>{created.info.id}</code> ({created.info.role}) — copy it now: it is shown this once.
          </p>
          <label for="new-token">New token</label>
          <div class="copy-row">
            <input id="new-token" readOnly value={created.token} onFocus={(e) => e.currentTarget.select()} spellcheck={false} />
            <button type="button" onClick={() => navigator.clipboard.writeText(created.token).then(() => setCopied(true), () => setCopied(false))}>
              {copied ? 'Copied' : 'Copy'}
            </button>
            <button type="button" class="secondary" onClick={() => setCreated(undefined)}>
              Done
            </button>
          </div>
        </div>
      ) : null}
      <form class="card form" onSubmit={create} aria-label="Create a token">
        <h2>Create a token</h2>
        <div class="grid">
          <div class="field">
            <label for="token-role">Role</label>
            <select id="token-role" value={form.role} onChange={set('role')}>
              <Options values={ROLES} />
            </select>
          </div>
          {form.role === 'agent' ? (
            <>
              <div class="field">
                <label for="token-deployment">Deployment</label>
                <input id="token-deployment" required value={form.deployment} onInput={set('deployment')} />
              </div>
              <div class="field">
                <label for="token-deployment-group">Its resource group (empty: main tenant scope)</label>
                <input id="token-deployment-group" value={form.deploymentGroup} onInput={set('deploymentGroup')} />
              </div>
            </>
          ) : form.role !== 'tenant-admin' ? (
            <div class="field">
              <label for="token-groups">Resource groups (comma separated{form.role === 'rg-admin' ? '' : '; empty: the whole tenant'})</label>
              <input id="token-groups" value={form.groups} onInput={set('groups')} />
            </div>
          ) : null}
          <div class="field">
            <label for="token-description">Description</label>
            <input id="token-description" value={form.description} onInput={set('description')} />
          </div>
          <div class="field">
            <label for="token-ttl">Expires after (hours; empty: never)</label>
            <input id="token-ttl" type="number" min="0" step="any" value={form.ttlHours} onInput={set('ttlHours')} />
          </div>
        </div>
        <button type="submit">Create token</button>
      </form>
      <ErrorLine error={error} />
      <h2>Tokens</h2>
      {tokens ? (
        <Table caption="Tokens" columns={['Id', 'Role', 'Reaches', 'Description', 'Created', 'Expires', '']}>
            {tokens.map((t) => (
              <tr key={t.id}>
                <td>
                  <code>{t.id}</code>
                </td>
                <td>{t.role}</td>
                <td>{t.role === 'agent' ? `deployment ${t.deployment}${t.deployment_resource_group ? ` in ${t.deployment_resource_group}` : ''}` : t.resource_groups.join(', ') || `tenant ${t.tenant}`}</td>
                <td>{t.description}</td>
                <td>
                  <Time value={t.create_time} />
                </td>
                <td>{t.expire_time ? <Time value={t.expire_time} /> : 'never'}</td>
                <td>
                  {confirmRevoke === t.id ? (
                    <>
                      <button type="button" class="danger" onClick={() => revoke(t.id)}>
                        Revoke {t.id}
                      </button>{' '}
                      <button type="button" class="secondary" onClick={() => setConfirmRevoke('')}>
                        Cancel
                      </button>
                    </>
                  ) : (
                    <button type="button" class="secondary" onClick={() => setConfirmRevoke(t.id)}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </Table>
      ) : null}
    </section>
  );
}
