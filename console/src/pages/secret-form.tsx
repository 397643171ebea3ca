/**
 * Create a secret (from a template, custom key/values, or the container-registry form) or edit
 * one. On edit the key names are fixed: a key can get a new value or be removed, and new keys
 * can be added (a rename is remove + add). Values are typed into password fields and sent once;
 * the page never reads a stored value back (reveal is on the details page).
 */
import { useEffect, useState } from 'preact/hooks';
import { call, seg } from '../api';
import { ErrorLine, formatLabels, Options, PageTitle, parseLabels, Pending } from '../components';
import { useSession } from '../context';
import { go, href } from '../router';
import type { Mount, Secret } from '../types';

interface KeyRow {
  id: number;
  key: string;
  value: string;
  subPath: string;
  /** Required by the template or the registry form, or stored already (edit): the name cannot change. */
  fixed: boolean;
  /** Stored already (edit only). */
  stored: boolean;
  remove: boolean;
}

const REGISTRY = 'container-registry';
let rowIds = 0;
const row = (key = '', fixed = false, stored = false, subPath = ''): KeyRow => ({ id: ++rowIds, key, value: '', subPath, fixed, stored, remove: false });

export function SecretForm({ name: editing }: { name?: string }) {
  const { scope, templates } = useSession();
  const [template, setTemplate] = useState('openai');
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [labels, setLabels] = useState('');
  const [kind, setKind] = useState('env');
  const [format, setFormat] = useState('dotenv');
  const [path, setPath] = useState('');
  const [rows, setRows] = useState<KeyRow[]>(() => templates.templates.openai.map((k) => row(k, true)));
  const [current, setCurrent] = useState<Secret>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!editing) return;
    call<Secret>('GET', `/v1/admin/secrets/${seg(editing)}`, { scope }).then((s) => {
      setCurrent(s);
      setName(s.name);
      setDescription(s.description);
      setLabels(formatLabels(s.labels));
      setKind(s.mount?.kind || 'file');
      setFormat(s.mount?.format || 'dotenv');
      setPath(s.mount?.path || '');
      setRows(s.keys.map((k) => row(k, true, true, s.mount?.sub_paths?.[k] ?? '')));
    }, setError);
  }, [editing]);

  const chooseTemplate = (t: string) => {
    setTemplate(t);
    const fixed = t === REGISTRY ? [...templates.registry_keys.required, ...templates.registry_keys.optional] : (templates.templates[t] ?? []);
    setRows(fixed.length ? fixed.map((k) => row(k, true)) : [row()]);
    if (t === REGISTRY) setKind('file');
  };
  const setRow = (id: number, change: Partial<KeyRow>) => setRows(rows.map((r) => (r.id === id ? { ...r, ...change } : r)));

  const mount = (): Mount => {
    if (kind === 'env') return { kind: 'env', format };
    const subPaths = Object.fromEntries(rows.filter((r) => r.key && r.subPath.trim() && !r.remove).map((r) => [r.key, r.subPath.trim()]));
    return { kind: 'file', ...(path.trim() ? { path: path.trim() } : {}), ...(Object.keys(subPaths).length ? { sub_paths: subPaths } : {}) };
  };

  const save = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const wantedLabels = parseLabels(labels);
      if (!editing) {
        // The registry's optional key is left out when empty.
        const data = Object.fromEntries(rows.filter((r) => r.key && (r.value !== '' || !(template === REGISTRY && templates.registry_keys.optional.includes(r.key)))).map((r) => [r.key, r.value]));
        const body = {
          name: name.trim(),
          data,
          labels: wantedLabels,
          description,
          mount: mount(),
          ...(template === REGISTRY ? { type: 'container_registry' } : { provider_slug: template }),
        };
        const created = await call<Secret>('POST', '/v1/admin/secrets', { scope, body });
        go('secrets', created.name);
      } else {
        const data: Record<string, string | null> = {};
        for (const r of rows) {
          if (r.stored && r.remove) data[r.key] = null;
          else if (r.key && (!r.stored || r.value !== '')) data[r.key] = r.value;
        }
        const labelChanges: Record<string, string | null> = { ...wantedLabels };
        for (const k of Object.keys(current?.labels ?? {})) if (!(k in wantedLabels)) labelChanges[k] = null;
        const body = { data, labels: labelChanges, description, mount: mount(), ...(current ? { expected_version: current.version } : {}) };
        await call<Secret>('PATCH', `/v1/admin/secrets/${seg(editing)}`, { scope, body });
        go('secrets', editing);
      }
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  if (editing && !current) return <Pending error={error} />;
  return (
    <section>
      <PageTitle>{editing ? `Edit secret ${editing}` : 'Create secret'}</PageTitle>
      <form class="card form" onSubmit={save}>
        {!editing ? (
          <div class="field">
            <label for="template">Template</label>
            <select id="template" value={template} onChange={(e) => chooseTemplate(e.currentTarget.value)}>
              {Object.keys(templates.templates).map((t) => (
                <option key={t} value={t}>
                  {t === 'custom' ? 'custom key/values' : t}
                </option>
              ))}
              <option value={REGISTRY}>container registry</option>
            </select>
          </div>
        ) : null}
        <div class="field">
          <label for="name">Name</label>
          <input id="name" required value={name} disabled={Boolean(editing)} onInput={(e) => setName(e.currentTarget.value)} autoComplete="off" />
        </div>
        <div class="field">
          <label for="description">Description</label>
          <input id="description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="labels">Labels (key=value, comma separated)</label>
          <input id="labels" value={labels} onInput={(e) => setLabels(e.currentTarget.value)} />
        </div>
        <fieldset>
          <legend>Mounted as</legend>
          <label class="inline">
            <input type="radio" name="kind" value="env" checked={kind === 'env'} onChange={() => setKind('env')} /> environment variables
          </label>
          <label class="inline">
            <input type="radio" name="kind" value="file" checked={kind === 'file'} onChange={() => setKind('file')} /> files
          </label>
          {kind === 'env' ? (
            <div class="field">
              <label for="format">Env file format</label>
              <select id="format" value={format} onChange={(e) => setFormat(e.currentTarget.value)}>
                <Options values={templates.env_formats} />
              </select>
            </div>
          ) : (
            <div class="field">
              <label for="path">Path under $BENTOML_HOME (default: the secret name)</label>
              <input id="path" value={path} onInput={(e) => setPath(e.currentTarget.value)} placeholder={name || 'path'} />
            </div>
          )}
        </fieldset>
        <fieldset>
          <legend>Keys and values</legend>
          {editing ? <p class="help">Key names cannot be changed: remove a key and add a new one. Leave a value empty to keep it.</p> : null}
          {rows.map((r, i) => (
            <div class="key-row" key={r.id}>
              <div class="field">
                <label for={`key-${i}`}>Key {i + 1}</label>
                <input id={`key-${i}`} value={r.key} readOnly={r.fixed} required onInput={(e) => setRow(r.id, { key: e.currentTarget.value })} autoComplete="off" spellcheck={false} />
              </div>
              <div class="field">
                <label for={`value-${i}`}>{r.stored ? `New value of ${r.key}` : `Value of ${r.key || `key ${i + 1}`}`}</label>
                <input
                  id={`value-${i}`}
                  type="password"
                  autoComplete="new-password"
                  value={r.value}
                  disabled={r.remove}
                  required={!r.stored && !(template === REGISTRY && templates.registry_keys.optional.includes(r.key))}
                  onInput={(e) => setRow(r.id, { value: e.currentTarget.value })}
                  placeholder={r.stored ? 'unchanged' : ''}
                />
              </div>
              {kind === 'file' ? (
                <div class="field">
                  <label for={`subpath-${i}`}>Sub-path of {r.key || `key ${i + 1}`} (optional)</label>
                  <input id={`subpath-${i}`} value={r.subPath} onInput={(e) => setRow(r.id, { subPath: e.currentTarget.value })} />
                </div>
              ) : null}
              {r.stored ? (
                <label class="inline">
                  <input type="checkbox" checked={r.remove} onChange={(e) => setRow(r.id, { remove: e.currentTarget.checked })} /> remove {r.key}
                </label>
              ) : !r.fixed ? (
                <button type="button" class="secondary" onClick={() => setRows(rows.filter((x) => x.id !== r.id))} aria-label={`Remove key ${i + 1}`}>
                  Remove
                </button>
              ) : null}
            </div>
          ))}
          {template !== REGISTRY || editing ? (
            <button type="button" class="secondary" onClick={() => setRows([...rows, row()])}>
              Add key
            </button>
          ) : null}
        </fieldset>
        <ErrorLine error={error} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            {editing ? 'Save changes' : 'Create'}
          </button>
          <a class="button secondary" href={editing ? href('secrets', editing) : href('secrets')}>
            Cancel
          </a>
        </div>
      </form>
    </section>
  );
}
