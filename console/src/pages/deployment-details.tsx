/**
 * One deployment and its live rollout: per secret, "current/total on vN", and per agent the
 * version it holds, when it applied it, and whether it is current, behind, stale, failing (with
 * the reason it reported) or a one-shot run (`lockbox-agent once`). Polled every second while the page is open.
 */
import { useEffect, useState } from 'preact/hooks';
import { call, seg } from '../api';
import { ConfirmDelete, EditDelete, ErrorLine, PageTitle, Pending, Table, Time } from '../components';
import { useSession } from '../context';
import { go, href } from '../router';
import type { Deployment, Rollout, RolloutAgent } from '../types';

const POLL_MS = 1000;

function agentState(agent: RolloutAgent, current: number): { text: string; class: string } {
  if (agent.one_shot) return { text: `one-shot run (applied v${agent.version}, then exited)`, class: agent.problems.length ? 'bad' : 'ok' };
  if (agent.stale) return { text: 'stale (no report for three resync intervals)', class: 'warn' };
  if (agent.problems.length) return { text: `failed: ${agent.problems.join('; ')}`, class: 'bad' };
  if (agent.version === current) return { text: 'current', class: 'ok' };
  return { text: 'behind', class: 'warn' };
}

export function DeploymentDetails({ name }: { name: string }) {
  const { scope, canWrite } = useSession();
  const [deployment, setDeployment] = useState<Deployment>();
  const [rollout, setRollout] = useState<Rollout>();
  const [error, setError] = useState<unknown>();
  const [confirmDelete, setConfirmDelete] = useState(false);
  const path = `/v1/admin/deployments/${seg(name)}`;

  useEffect(() => {
    call<Deployment>('GET', path, { scope }).then(setDeployment, setError);
    let timer: number | undefined;
    let stopped = false;
    const poll = async () => {
      try {
        const next = await call<Rollout>('GET', `${path}/rollout`, { scope });
        if (!stopped) setRollout(next);
      } catch (e) {
        if (!stopped) setError(e);
      }
      if (!stopped) timer = window.setTimeout(poll, POLL_MS);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [name, scope]);

  const remove = async () => {
    try {
      await call('DELETE', path, { scope });
      go('deployments');
    } catch (e) {
      setError(e);
    }
  };

  if (!deployment) return <Pending error={error} />;
  return (
    <section>
      <PageTitle
        actions={
          canWrite ? (
            <EditDelete editHref={href('deployments', name, 'edit')} onDelete={() => setConfirmDelete(true)} />
          ) : null
        }
      >
        Deployment {deployment.name}
      </PageTitle>
      <ErrorLine error={error} />
      {confirmDelete ? (
        <ConfirmDelete what="deployment" onConfirm={remove} onCancel={() => setConfirmDelete(false)}>
          <p>Delete deployment {deployment.name}? Its agents stop receiving its secrets.</p>
        </ConfirmDelete>
      ) : null}
      {deployment.description ? <p>{deployment.description}</p> : null}
      <h2>Rollout</h2>
      <p class="muted small" aria-live="off">
        Updated every second{rollout ? <> · read at <Time value={rollout.time} /></> : null}
      </p>
      {rollout?.secrets.length === 0 ? <p class="muted">This deployment mounts no secrets.</p> : null}
      {rollout?.secrets.map((s) => (
        <div class="rollout card" key={s.name}>
          <h3>
            <a href={href('secrets', s.name)}>{s.name}</a>
            {s.resource_group === '*' ? <span class="tag">tenant-wide</span> : null}{' '}
            <span class={`summary ${s.missing ? 'bad' : s.total && s.current === s.total ? 'ok' : 'warn'}`} data-summary={s.name}>
              {s.summary}
            </span>
          </h3>
          {s.agents.length ? (
            <Table caption={`Agents holding ${s.name}`} columns={['Agent', 'Holds', 'Applied', 'Last report', 'State']}>
                {s.agents.map((a) => {
                  const state = agentState(a, s.current_version);
                  return (
                    <tr key={a.agent_id}>
                      <td>
                        <code>{a.agent_id}</code>
                      </td>
                      <td>{a.version ? `v${a.version}` : 'none'}</td>
                      <td>
                        <Time value={a.applied_time} />
                      </td>
                      <td>
                        <Time value={a.last_seen_time} />
                      </td>
                      <td class={state.class}>{state.text}</td>
                    </tr>
                  );
                })}
              </Table>
          ) : (
            <p class="muted">No agent has reported this secret yet.</p>
          )}
        </div>
      ))}
    </section>
  );
}
