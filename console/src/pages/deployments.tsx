/** Deployments of the chosen scope (tenant-wide has none: deployments live in a resource group or the main tenant scope). */
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api';
import { ErrorLine, PageTitle, Table, Time } from '../components';
import { useSession } from '../context';
import { href } from '../router';
import type { Deployment } from '../types';

export function DeploymentsPage() {
  const { scope, canWrite } = useSession();
  const [deployments, setDeployments] = useState<Deployment[]>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    if (scope !== '*') call<{ deployments: Deployment[] }>('GET', '/v1/admin/deployments', { scope }).then((d) => setDeployments(d.deployments), setError);
  }, [scope]);
  if (scope === '*')
    return (
      <section>
        <PageTitle>Deployments</PageTitle>
        <p class="notice">Deployments live in a resource group or the main tenant scope; choose one in the scope picker. They can mount tenant-wide secrets.</p>
      </section>
    );
  return (
    <section>
      <PageTitle actions={canWrite ? <a class="button" href={href('new-deployment')}>Create deployment</a> : null}>Deployments</PageTitle>
      <ErrorLine error={error} />
      {deployments ? (
        <Table caption="Deployments" columns={['Name', 'Secrets', 'Version', 'Updated']}>
            {deployments.map((d) => (
              <tr key={d.name}>
                <td>
                  <a href={href('deployments', d.name)}>{d.name}</a>
                  {d.description ? <div class="muted small">{d.description}</div> : null}
                </td>
                <td>{d.secrets.join(', ') || <span class="muted">none</span>}</td>
                <td>v{d.version}</td>
                <td>
                  <Time value={d.update_time} />
                </td>
              </tr>
            ))}
          </Table>
      ) : null}
      {deployments?.length === 0 ? <p class="muted">No deployments in this scope.</p> : null}
    </section>
  );
}
