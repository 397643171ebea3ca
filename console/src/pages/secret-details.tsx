/**
 * One secret: its metadata, keys, kept versions (restore), who holds which version, the
 * deployments that mount it, and delete. Values stay hidden: "Reveal" on a key is an audited read
 * (GET …?reveal=true); only that key's value is kept, shown until Hide, and dropped on leaving.
 */
import { useEffect, useState } from 'preact/hooks';
import { call, seg } from '../api';
import { ConfirmDelete, EditDelete, ErrorLine, Labels, Notice, PageTitle, Pending, Table, Time } from '../components';
import { useSession } from '../context';
import { go, href } from '../router';
import type { Deployment, Secret } from '../types';

interface Versions {
  current_version: number;
  versions: Array<{ version: number; create_time: string; keys: string[]; operation: string; restored_from: number }>;
}

interface SecretRollout {
  summary: string;
  agents: Array<{ agent_id: string; deployment: string; version: number; applied_time: string; stale: boolean; problems: string[] }>;
}

export function SecretDetails({ name }: { name: string }) {
  const { scope, canWrite, identity } = useSession();
  const [secret, setSecret] = useState<Secret>();
  const [versions, setVersions] = useState<Versions>();
  const [rollout, setRollout] = useState<SecretRollout>();
  const [mountedBy, setMountedBy] = useState<Deployment[]>();
  const [revealed, setRevealed] = useState<{ key: string; value: string }>();
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [force, setForce] = useState(false);
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState('');
  const path = `/v1/admin/secrets/${seg(name)}`;

  const load = () => {
    call<Secret>('GET', path, { scope }).then(setSecret, setError);
    call<Versions>('GET', `${path}/versions`, { scope }).then(setVersions, () => setVersions(undefined));
    call<SecretRollout>('GET', `${path}/rollout`, { scope }).then(setRollout, () => setRollout(undefined));
    if (scope !== '*')
      call<{ deployments: Deployment[] }>('GET', '/v1/admin/deployments', { scope }).then(
        (d) => setMountedBy(d.deployments.filter((x) => x.secrets.includes(name))),
        () => setMountedBy(undefined),
      );
  };
  useEffect(load, [name, scope]);

  const reveal = async (key: string) => {
    setError(undefined);
    try {
      const full = await call<Secret>('GET', path, { scope, query: { reveal: true } });
      const value = full.data?.[key] ?? (full.data_base64?.[key] !== undefined ? `base64:${full.data_base64[key]}` : '');
      setRevealed({ key, value });
    } catch (e) {
      setError(e);
    }
  };
  const restore = async (version: number) => {
    setError(undefined);
    try {
      const restored = await call<Secret>('POST', `${path}/versions/${version}/restore`, { scope, body: { expected_version: secret?.version } });
      setNotice(`Restored version ${version} as version ${restored.version}.`);
      setRevealed(undefined);
      load();
    } catch (e) {
      setError(e);
    }
  };
  const remove = async () => {
    setError(undefined);
    try {
      await call('DELETE', path, { scope, query: { force: force || undefined } });
      go('secrets');
    } catch (e) {
      setError(e);
    }
  };

  if (!secret) return <Pending error={error} />;
  const writable = canWrite && secret.scope.resource_group === scope;
  return (
    <section>
      <PageTitle
        actions={
          writable ? (
            <EditDelete editHref={href('secrets', name, 'edit')} onDelete={() => setConfirmDelete(true)} />
          ) : null
        }
      >
        Secret {secret.name}
      </PageTitle>
      {notice ? <Notice>{notice}</Notice> : null}
      <ErrorLine error={error} />
      {confirmDelete ? (
        <ConfirmDelete what="secret" onConfirm={remove} onCancel={() => setConfirmDelete(false)} disabled={Boolean(mountedBy?.length) && !force}>
          <p>
            Delete secret <strong>{secret.name}</strong> and all its versions?
          </p>
          {mountedBy?.length ? (
            <>
              <p>It is mounted by these deployments; their agents will stop receiving it:</p>
              <ul>
                {mountedBy.map((d) => (
                  <li key={d.name}>{d.name}</li>
                ))}
              </ul>
              <label class="inline">
                <input type="checkbox" checked={force} onChange={(e) => setForce(e.currentTarget.checked)} /> delete anyway (force)
              </label>
            </>
          ) : null}
        </ConfirmDelete>
      ) : null}
      <dl class="facts card">
        <dt>Scope</dt>
        <dd>{secret.scope.resource_group === '*' ? 'tenant-wide' : secret.scope.resource_group || 'main tenant scope'}</dd>
        <dt>Template</dt>
        <dd>{secret.provider_slug || 'custom'}</dd>
        <dt>Type</dt>
        <dd>{secret.type}</dd>
        <dt>Description</dt>
        <dd>{secret.description || <span class="muted">—</span>}</dd>
        <dt>Labels</dt>
        <dd>
          <Labels labels={secret.labels} />
        </dd>
        <dt>Mounted as</dt>
        <dd>{secret.mount?.kind === 'env' ? `environment variables (${secret.mount.format || 'dotenv'} file)` : `files under $BENTOML_HOME/${secret.mount?.path || secret.name}`}</dd>
        <dt>Version</dt>
        <dd>v{secret.version}</dd>
        <dt>Updated</dt>
        <dd>
          <Time value={secret.update_time} />
        </dd>
        <dt>Rollout</dt>
        <dd>{rollout ? rollout.summary : <span class="muted">—</span>}</dd>
        <dt>Mounted by</dt>
        <dd>{mountedBy === undefined ? <span class="muted">—</span> : mountedBy.length ? mountedBy.map((d) => <a key={d.name} class="tag" href={href('deployments', d.name)}>{d.name}</a>) : 'no deployment'}</dd>
      </dl>
      <h2>Keys</h2>
      <Table caption="Keys" columns={secret.mount?.kind !== 'env' ? ['Key', 'Sub-path', 'Value'] : ['Key', 'Value']}>
          {secret.keys.map((key) => (
            <tr key={key}>
              <td>
                <code>{key}</code>
              </td>
              {secret.mount?.kind !== 'env' ? <td>{secret.mount?.sub_paths?.[key] || <span class="muted">—</span>}</td> : null}
              <td>
                {revealed?.key === key ? (
                  <>
                    <code class="revealed" data-revealed={key}>
                      {revealed.value}
                    </code>{' '}
                    <button type="button" class="secondary" onClick={() => setRevealed(undefined)}>
                      Hide
                    </button>
                  </>
                ) : (
                  <>
                    <span class="masked" aria-label="hidden value">
                      ••••••••
                    </span>{' '}
                    {identity.may.reveal ? (
                      <button type="button" class="secondary" onClick={() => reveal(key)} aria-label={`Reveal ${key} (audited)`}>
                        Reveal
                      </button>
                    ) : null}
                  </>
                )}
              </td>
            </tr>
          ))}
        </Table>
      <h2>Versions</h2>
      {versions ? (
        <Table caption="Versions" columns={['Version', 'Made by', 'Keys', 'Time', '']}>
            {versions.versions.map((v) => (
              <tr key={v.version}>
                <td>v{v.version}{v.version === versions.current_version ? ' (current)' : ''}</td>
                <td>{v.operation}{v.restored_from ? ` of v${v.restored_from}` : ''}</td>
                <td>{v.keys.join(', ')}</td>
                <td>
                  <Time value={v.create_time} />
                </td>
                <td>
                  {writable && v.version !== versions.current_version ? (
                    <button type="button" class="secondary" onClick={() => restore(v.version)}>
                      Restore v{v.version}
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </Table>
      ) : (
        <p class="muted">—</p>
      )}
    </section>
  );
}
