/**
 * Signed audit checkpoints and the audit export file (issue 13.6), shared by lockboxd, which signs,
 * and the CLI, which checks a file offline (`lockbox audit verify --file`).
 *
 * The chain's hashes are keyed (daemon/src/security/audit.ts): only the keyring's holder can
 * recompute them, so a file cannot be checked by its hashes alone. lockboxd therefore verifies
 * each entry against the chain while it exports it and signs what it verified, with the same
 * Ed25519 key as its checkpoints (derived from the keyring; the public half is in every
 * checkpoint and in `lockbox audit head`). The file is JSON lines:
 * 1. a header `{format, public_key, since, from, signature}`: `from` is a checkpoint (seq, hash)
 *    of the entry before the first exported one — the link of the first entry line (after a
 *    prune, the cut), which lockboxd verified links back to the cut or the chain's start before
 *    signing; `signature` covers format, since and `from` together (headerText), so none of them
 *    can be edited or swapped in from another export;
 * 2. one line per entry, oldest first: every field of the entry, its `prev_hash` and `hash`, and
 *    `signature` over entryText (the fields in a fixed order);
 * 3. a trailer `{end}`: a checkpoint of the last exported entry, so a file cut short fails.
 * Checking: (a) every signature verifies with the pinned key (or the header's); (b) each entry
 * links to the line before (`prev_hash`, seq + 1), the first to `from`; (c) the last entry is
 * `end`; (d) a head kept elsewhere (`--head SEQ:HASH`) inside the file's range matches.
 */
import { verifyDetached } from './crypto.js';

export const AUDIT_EXPORT_FORMAT = 'lockbox-audit-export/v1';

export interface AuditCheckpoint {
  seq: number;
  hash: string;
  time: string;
  /** hex */
  public_key: string;
  /** hex */
  signature: string;
}

/** An audit entry as the API and the export file carry it. */
export interface AuditEntryMessage {
  seq: number;
  time: string;
  token_id: string;
  role: string;
  tenant: string;
  resource_group: string;
  action: string;
  target: string;
  version: number;
  outcome: string;
  request_id: string;
  count: number;
  prev_hash: string;
  hash: string;
}

/**
 * What a checkpoint says: `checkpoint`, "the chain held this entry" (heads, an export's ends);
 * `cut`, "entries up to this one were pruned on purpose" (audit prune). Each is signed under its
 * own label, so a head published on NATS cannot be passed off as a cut to hide a deletion.
 */
export type CheckpointKind = 'checkpoint' | 'cut';

/** What a checkpoint's signature covers: NUL-separated, so no field can run into the next. */
export function checkpointText(seq: number, hash: string, time: string, kind: CheckpointKind = 'checkpoint'): string {
  return [`lockbox/v1/audit-${kind}`, String(seq), hash, time].join('\0');
}

/** What an exported entry's signature covers (step (2)). */
export function entryText(e: AuditEntryMessage): string {
  const fields = [e.seq, e.time, e.token_id, e.role, e.tenant, e.resource_group, e.action, e.target, e.version, e.outcome, e.request_id, e.count, e.prev_hash, e.hash];
  return `lockbox/v1/audit-entry\0${JSON.stringify(fields)}`;
}

/** What the header's signature covers (step (1)). */
export function headerText(format: string, since: string, from: AuditCheckpoint): string {
  return `lockbox/v1/audit-export-header\0${JSON.stringify([format, since, Number(from.seq), from.hash, from.time, from.signature])}`;
}

const verifies = (signatureHex: unknown, text: string, publicKeyHex: string) =>
  typeof signatureHex === 'string' && verifyDetached(Buffer.from(signatureHex, 'hex'), text, Buffer.from(publicKeyHex, 'hex'));

/** Whether `checkpoint` was signed, as a `kind`, by the holder of the private half of `publicKeyHex`. */
export function checkpointVerifies(checkpoint: AuditCheckpoint, publicKeyHex: string, kind: CheckpointKind = 'checkpoint'): boolean {
  return verifies(checkpoint.signature, checkpointText(Number(checkpoint.seq), checkpoint.hash, checkpoint.time, kind), publicKeyHex);
}

export interface ExportCheck {
  ok: boolean;
  /** Entry lines checked. */
  entries: number;
  /** The key that verified (or would have verified) the file. */
  publicKey: string;
  /** The first line that failed (1-based), 0 when ok. */
  line: number;
  problem: string;
  /** The range of entries the file holds: after `from`, up to `to`. */
  from: number;
  to: number;
}

/** Steps (a)-(d) over the file's text. `publicKey`: a pinned key (hex); else the header's. */
export function checkAuditExport(text: string, options: { publicKey?: string; head?: { seq: number; hash: string } } = {}): ExportCheck {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const result: ExportCheck = { ok: false, entries: 0, publicKey: options.publicKey ?? '', line: 0, problem: '', from: 0, to: 0 };
  const fail = (line: number, problem: string): ExportCheck => ({ ...result, line, problem });
  const parsed: any[] = [];
  for (const [i, line] of lines.entries()) {
    try {
      parsed.push(JSON.parse(line));
    } catch {
      return fail(i + 1, 'not a JSON line');
    }
  }
  const header = parsed[0];
  if (!header || header.format !== AUDIT_EXPORT_FORMAT || !header.from) return fail(1, `not a header of ${AUDIT_EXPORT_FORMAT} (lockbox audit export writes one)`);
  const key = options.publicKey ?? String(header.public_key ?? '');
  result.publicKey = key;
  if (options.publicKey && header.public_key !== options.publicKey) return fail(1, `signed by key ${String(header.public_key).slice(0, 16)}…, not the pinned ${options.publicKey.slice(0, 16)}…`);
  if (!checkpointVerifies(header.from, key)) return fail(1, 'the signature of its starting checkpoint does not verify: the header was edited or signed by another key');
  if (!verifies(header.signature, headerText(String(header.format), String(header.since), header.from), key))
    return fail(1, 'the header\'s signature over format, since and from does not verify: the header was edited');
  let previous = { seq: Number(header.from.seq), hash: String(header.from.hash) };
  result.from = previous.seq;
  let headSeen = false;
  for (let i = 1; i < parsed.length; i++) {
    const line = parsed[i];
    const n = i + 1;
    if (line.end !== undefined) {
      if (i !== parsed.length - 1) return fail(n, 'the end checkpoint is not the last line: lines were added after it');
      if (!checkpointVerifies(line.end, key)) return fail(n, 'the signature of the end checkpoint does not verify: it was edited');
      if (Number(line.end.seq) !== previous.seq || line.end.hash !== previous.hash)
        return fail(n, `the end checkpoint is entry ${line.end.seq}, but the last line is entry ${previous.seq}: entries were removed from the end`); // (c)
      if (options.head && options.head.seq > result.from && options.head.seq <= previous.seq && !headSeen)
        return fail(n, `entry ${options.head.seq} of the known head does not hash to ${options.head.hash.slice(0, 12)}… here`); // (d)
      return { ...result, ok: true, to: previous.seq };
    }
    const seq = Number(line.seq);
    if (!verifies(line.signature, entryText(line as AuditEntryMessage), key)) return fail(n, `entry ${line.seq}: its signature does not verify: the line was edited`); // (a)
    if (line.prev_hash !== previous.hash || seq !== previous.seq + 1)
      return fail(n, `entry ${seq} does not follow entry ${previous.seq} (its link or number differ): an entry before it was removed, added or moved`); // (b)
    if (options.head && options.head.seq === seq) headSeen = line.hash === options.head.hash;
    previous = { seq, hash: line.hash };
    result.entries++;
  }
  return fail(parsed.length, 'the file ends without its end checkpoint: it was cut short');
}
