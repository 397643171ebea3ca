/** Small pieces every page uses. All text goes through JSX text nodes: nothing is parsed as HTML. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { ApiError } from './api';

/** An error as one line a person can act on (the API's message names the field and the rule). */
export function ErrorLine({ error }: { error: unknown }) {
  if (!error) return null;
  const text = error instanceof ApiError ? `${error.message} (${error.code})` : error instanceof Error ? error.message : String(error);
  return (
    <p class="error" role="alert">
      {text}
    </p>
  );
}

export function Notice({ children }: { children: ComponentChildren }) {
  return (
    <p class="notice" role="status">
      {children}
    </p>
  );
}

/** A page's heading, focused when the page opens so keyboard and screen-reader users land on it. */
export function PageTitle({ children, actions }: { children: ComponentChildren; actions?: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <div class="page-title">
      <h1 tabIndex={-1} ref={ref}>
        {children}
      </h1>
      {actions ? <div class="actions">{actions}</div> : null}
    </div>
  );
}

/** Times as the browser's locale shows them, in full on hover. */
export function Time({ value }: { value: string }) {
  if (!value) return <span class="muted">—</span>;
  const date = new Date(value);
  return <time dateTime={value} title={value}>{Number.isNaN(date.getTime()) ? value : date.toLocaleString()}</time>;
}

/**
 * A table that scrolls sideways in a narrow window rather than squeezing its columns. `columns`
 * are the header cells; an empty one is an actions column, named for screen readers only.
 */
export function Table({ caption, columns, children }: { caption: string; columns: string[]; children: ComponentChildren }) {
  return (
    <div class="table-wrap" role="region" aria-label={caption} tabIndex={0}>
      <table>
        <caption class="sr-only">{caption}</caption>
        <thead>
          <tr>
            {columns.map((c, i) => (
              <th scope="col" key={i}>
                {c || <span class="sr-only">Actions</span>}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** A page's data not there yet: its error, or "Loading…". */
export function Pending({ error }: { error: unknown }) {
  return <section>{error ? <ErrorLine error={error} /> : <p class="muted">Loading…</p>}</section>;
}

/** The Edit link and Delete button of a details page, for tokens that may write. */
export function EditDelete({ editHref, onDelete }: { editHref: string; onDelete: () => void }) {
  return (
    <>
      <a class="button" href={editHref}>
        Edit
      </a>
      <button type="button" class="danger" onClick={onDelete}>
        Delete
      </button>
    </>
  );
}

/** The confirm step of a delete: what it means (children), then "Delete <what>" and Cancel. */
export function ConfirmDelete({ what, onConfirm, onCancel, disabled, children }: { what: string; onConfirm: () => void; onCancel: () => void; disabled?: boolean; children: ComponentChildren }) {
  return (
    <div class="card warning" role="group" aria-label="Confirm delete">
      {children}
      <div class="actions">
        <button type="button" class="danger" onClick={onConfirm} disabled={disabled}>
          Delete {what}
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </div>
  );
}

/** <option>s for a filter select: "any" (the empty value), then each value. */
export function Options({ values, any }: { values: string[]; any?: boolean }) {
  return (
    <>
      {any ? <option value="">any</option> : null}
      {values.map((v) => (
        <option key={v} value={v}>
          {v}
        </option>
      ))}
    </>
  );
}

export function Labels({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels);
  if (!entries.length) return <span class="muted">—</span>;
  return (
    <ul class="labels">
      {entries.map(([k, v]) => (
        <li key={k}>
          {k}={v}
        </li>
      ))}
    </ul>
  );
}

/** "a=1, b=2" → {a: "1", b: "2"}; the daemon checks the label syntax. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const at = part.indexOf('=');
    labels[at < 0 ? part : part.slice(0, at).trim()] = at < 0 ? '' : part.slice(at + 1).trim();
  }
  return labels;
}

export const formatLabels = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

export const scopeName = (group: string) => (group === '' ? 'main tenant scope' : group === '*' ? 'tenant-wide' : group);
