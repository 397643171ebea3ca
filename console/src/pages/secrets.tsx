/**
 * Secrets of the chosen scope: filters by template, type and label run in the API (GET
 * /v1/admin/secrets), a page at a time by its cursor; the search box narrows the page shown by
 * name, description and labels.
 */
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api';
import { ErrorLine, Labels, Options, PageTitle, Table, Time } from '../components';
import { useSession } from '../context';
import { href } from '../router';
import type { Secret } from '../types';

const PAGE = 20;

export function SecretsPage() {
  const { scope, templates, canWrite } = useSession();
  const [filters, setFilters] = useState({ provider_slug: '', type: '', label: '' });
  const [cursors, setCursors] = useState<string[]>(['']); // the cursor of each page seen, for Previous
  const [page, setPage] = useState<{ secrets: Secret[]; next_cursor: string }>();
  const [search, setSearch] = useState('');
  const [error, setError] = useState<unknown>();
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {
    setError(undefined);
    call<{ secrets: Secret[]; next_cursor: string }>('GET', '/v1/admin/secrets', {
      scope,
      query: { limit: PAGE, cursor, provider_slug: filters.provider_slug, type: filters.type, label: filters.label ? [filters.label] : undefined },
    }).then(setPage, (e) => (setError(e), setPage(undefined)));
  }, [scope, cursor, filters]);

  const setFilter = (name: keyof typeof filters) => (e: Event) => {
    setFilters({ ...filters, [name]: (e.currentTarget as HTMLInputElement).value.trim() });
    setCursors(['']);
  };
  const needle = search.trim().toLowerCase();
  const shown = (page?.secrets ?? []).filter(
    (s) => !needle || [s.name, s.description, ...Object.entries(s.labels).map(([k, v]) => `${k}=${v}`)].some((t) => t.toLowerCase().includes(needle)),
  );

  return (
    <section>
      <PageTitle actions={canWrite ? <a class="button" href={href('new-secret')}>Create secret</a> : null}>Secrets</PageTitle>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter secrets">
        <div class="field">
          <label for="search">Search this page</label>
          <input id="search" type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} placeholder="name, description, label" />
        </div>
        <div class="field">
          <label for="filter-template">Template</label>
          <select id="filter-template" value={filters.provider_slug} onChange={setFilter('provider_slug')}>
            <Options any values={Object.keys(templates.templates)} />
          </select>
        </div>
        <div class="field">
          <label for="filter-type">Type</label>
          <select id="filter-type" value={filters.type} onChange={setFilter('type')}>
            <Options any values={templates.secret_types} />
          </select>
        </div>
        <div class="field">
          <label for="filter-label">Label (key=value)</label>
          <input id="filter-label" value={filters.label} onChange={setFilter('label')} placeholder="team=ml" />
        </div>
      </form>
      <ErrorLine error={error} />
      {page ? (
        <>
          <Table caption="Secrets" columns={['Name', 'Template', 'Type', 'Mounted as', 'Keys', 'Version', 'Labels', 'Updated']}>
              {shown.map((s) => (
                <tr key={`${s.scope.resource_group}/${s.name}`}>
                  <td>
                    <a href={href('secrets', s.name)}>{s.name}</a>
                    {s.scope.resource_group === '*' && scope !== '*' ? <span class="tag">tenant-wide</span> : null}
                    {s.description ? <div class="muted small">{s.description}</div> : null}
                  </td>
                  <td>{s.provider_slug || 'custom'}</td>
                  <td>{s.type}</td>
                  <td>{s.mount?.kind === 'env' ? `env (${s.mount.format || 'dotenv'})` : `files in ${s.mount?.path || s.name}`}</td>
                  <td>{s.keys.length}</td>
                  <td>v{s.version}</td>
                  <td>
                    <Labels labels={s.labels} />
                  </td>
                  <td>
                    <Time value={s.update_time} />
                  </td>
                </tr>
              ))}
            </Table>
          {shown.length === 0 ? <p class="muted">No secrets here{needle ? ' match the search' : ''}.</p> : null}
          <nav class="pager" aria-label="Pages of secrets">
            <button type="button" class="secondary" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
              Previous page
            </button>
            <span>Page {cursors.length}</span>
            <button type="button" class="secondary" disabled={!page.next_cursor} onClick={() => setCursors([...cursors, page.next_cursor])}>
              Next page
            </button>
          </nav>
        </>
      ) : null}
    </section>
  );
}
