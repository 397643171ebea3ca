/** The scope picker: the scopes the token may see (GET /v1/whoami), and any resource group for tokens that span the tenant. */
import { useState } from 'preact/hooks';
import type { Identity } from '../types';

export function ScopePicker({ identity, scope, onChange }: { identity: Identity; scope: string; onChange: (group: string) => void }) {
  const listed = identity.scopes.some((s) => s.resource_group === scope);
  const [other, setOther] = useState(listed ? '' : scope);
  const OTHER = '\u0000other';
  const [choosingOther, setChoosingOther] = useState(!listed);
  return (
    <form
      class="scope"
      onSubmit={(e) => {
        e.preventDefault();
        if (other.trim()) onChange(other.trim());
      }}
    >
      <label for="scope">Scope</label>
      <select
        id="scope"
        value={choosingOther ? OTHER : scope}
        onChange={(e) => {
          const value = e.currentTarget.value;
          if (value === OTHER) return setChoosingOther(true);
          setChoosingOther(false);
          onChange(value);
        }}
      >
        {identity.scopes.map((s) => (
          <option key={s.resource_group} value={s.resource_group}>
            {s.label}
          </option>
        ))}
        {identity.any_resource_group ? <option value={OTHER}>other resource group…</option> : null}
      </select>
      {choosingOther ? (
        <>
          <label for="scope-group" class="sr-only">
            Resource group
          </label>
          <input id="scope-group" placeholder="resource group" value={other} onInput={(e) => setOther(e.currentTarget.value)} size={14} />
          <button type="submit" class="secondary">
            Use
          </button>
        </>
      ) : null}
    </form>
  );
}
