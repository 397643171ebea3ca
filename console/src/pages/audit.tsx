/** The audit log of the tenant (tenant admins): filter by action, target and time; verify the hash chain (operator admins). */
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api';
import { ErrorLine, Options, PageTitle, Table, Time } from '../components';
import { useSession } from '../context';
import type { AuditEntry } from '../types';

const ACTIONS = ['secret.create', 'secret.read', 'secret.update', 'secret.delete', 'secret.restore', 'secret.batch', 'deployment.create', 'deployment.update', 'deployment.delete', 'token.create', 'token.revoke'];

/** A datetime-local value (the browser's local time) as RFC 3339. */
const isoOf = (local: string) => (local ? new Date(local).toISOString() : undefined);

export function AuditPage() {
  const { identity } = useSession();
  const [filters, setFilters] = useState({ action: '', target: '', since: '', until: '' });
  const [entries, setEntries] = useState<AuditEntry[]>();
  const [next, setNext] = useState(0);
  const [verify, setVerify] = useState<{ ok: boolean; checked: number; first_broken_seq: number; problem: string }>();
  const [error, setError] = useState<unknown>();

  const load = async (afterSeq: number) => {
    setError(undefined);
    try {
      const page = await call<{ entries: AuditEntry[]; next_after_seq: number }>('GET', '/v1/admin/audit', {
        query: { action: filters.action, target: filters.target.trim(), since: isoOf(filters.since), until: isoOf(filters.until), after_seq: afterSeq || undefined },
      });
      setEntries(afterSeq ? [...(entries ?? []), ...page.entries] : page.entries);
      setNext(page.next_after_seq);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => void load(0), [filters]);
  const set = (name: keyof typeof filters) => (e: Event) => setFilters({ ...filters, [name]: (e.currentTarget as HTMLInputElement).value });

  return (
    <section>
      <PageTitle
        actions={
          identity.may.verify_audit ? (
            <button type="button" onClick={() => call<typeof verify>('POST', '/v1/admin/audit:verify').then(setVerify, setError)}>
              Verify chain
            </button>
          ) : null
        }
      >
        Audit
      </PageTitle>
      {verify ? (
        <p class={verify.ok ? 'notice ok' : 'error'} role="status" data-verify={verify.ok ? 'ok' : 'broken'}>
          {verify.ok ? `Chain verified: ${verify.checked} entries, unbroken.` : `Chain broken at entry ${verify.first_broken_seq}: ${verify.problem}`}
        </p>
      ) : null}
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter audit entries">
        <div class="field">
          <label for="audit-action">Action</label>
          <select id="audit-action" value={filters.action} onChange={set('action')}>
            <Options any values={ACTIONS} />
          </select>
        </div>
        <div class="field">
          <label for="audit-target">Target</label>
          <input id="audit-target" value={filters.target} onChange={set('target')} placeholder="secret, deployment or token id" />
        </div>
        <div class="field">
          <label for="audit-since">From</label>
          <input id="audit-since" type="datetime-local" value={filters.since} onChange={set('since')} />
        </div>
        <div class="field">
          <label for="audit-until">To</label>
          <input id="audit-until" type="datetime-local" value={filters.until} onChange={set('until')} />
        </div>
      </form>
      <ErrorLine error={error} />
      {entries ? (
        <Table caption="Audit entries" columns={['#', 'Time', 'Action', 'Target', 'Scope', 'Version', 'Token', 'Outcome']}>
            {entries.map((e) => (
              <tr key={e.seq} data-action={e.action}>
                <td>{e.seq}</td>
                <td>
                  <Time value={e.time} />
                </td>
                <td>{e.action}{e.count > 1 ? ` ×${e.count}` : ''}</td>
                <td>{e.target}</td>
                <td>{e.resource_group === '*' ? 'tenant-wide' : e.resource_group || 'main'}</td>
                <td>{e.version || ''}</td>
                <td>
                  <code>{e.token_id}</code> {e.role}
                </td>
                <td class={e.outcome === 'ok' ? 'ok' : 'bad'}>{e.outcome}</td>
              </tr>
            ))}
          </Table>
      ) : null}
      {entries?.length === 0 ? <p class="muted">No entries match.</p> : null}
      {next ? (
        <button type="button" class="secondary" onClick={() => load(next)}>
          Load more
        </button>
      ) : null}
    </section>
  );
}
