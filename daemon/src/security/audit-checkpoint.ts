/**
 * Signed checkpoints of the audit chain's head (issue 11, item 8).
 *
 * The hash chain (audit.ts) shows an entry edited or removed from the middle, but not the newest
 * entries removed from the end: what is left is still a valid chain. A checkpoint is the head
 * (seq, hash) at a moment, signed, and kept outside the database — in the log, on NATS
 * (`lockbox.v1.audit.checkpoints`), or wherever an operator copies `lockbox audit head` — so that
 * `lockbox audit verify --head SEQ:HASH` can tell that entries up to SEQ are still there.
 * 1. Read the head: everything committed is chained first (Store.auditHead).
 * 2. Sign "lockbox/v1/audit-checkpoint" ‖ seq ‖ hash ‖ time (NUL-separated) with an Ed25519 key
 *    derived from the keyring's token key, so only a holder of the keyring can sign one and
 *    anyone with the public key (in every checkpoint) can check one.
 * 3. Publish it (best effort; the log line is the record that always exists) and log it.
 * Periodic checkpoints (--audit-checkpoint-interval) are written only when the head moved.
 */
import { checkpointText, entryText, headerText, type AuditCheckpoint, type AuditEntryMessage, type CheckpointKind } from '../../../shared/src/audit-export.js';
import { deriveKey, signDetached, signingKeyPair } from '../../../shared/src/crypto.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';

export const AUDIT_CHECKPOINT_SUBJECT = 'lockbox.v1.audit.checkpoints';

export { checkpointVerifies, type AuditCheckpoint } from '../../../shared/src/audit-export.js';

/** "SEQ:HASH" → its parts; undefined when it is not that. */
export function parseHead(text: string): { seq: number; hash: string } | undefined {
  const match = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text.trim());
  return match ? { seq: Number(match[1]), hash: match[2] } : undefined;
}

export interface AuditCheckpointsOptions {
  store: Pick<Store, 'auditHead'>;
  tokenKey: Uint8Array;
  log: Logger;
  /** Sends the checkpoint on NATS; may fail or do nothing while NATS is down. */
  publish: (subject: string, payload: Uint8Array) => void;
  /** 0: no periodic checkpoints. */
  intervalMs: number;
}

export class AuditCheckpoints {
  private readonly keys;
  private timer: NodeJS.Timeout | undefined;
  private lastSeq = -1;

  constructor(private readonly options: AuditCheckpointsOptions) {
    this.keys = signingKeyPair(deriveKey(options.tokenKey, 3, 'lbxckpnt'));
  }

  get publicKey(): string {
    return Buffer.from(this.keys.publicKey).toString('hex');
  }

  /** Step (2) for any (seq, hash): the heads and an export's ends; a prune's cut as kind `cut`. */
  sign(seq: number, hash: string, kind: CheckpointKind = 'checkpoint'): AuditCheckpoint {
    const time = new Date().toISOString();
    const signature = signDetached(checkpointText(seq, hash, time, kind), this.keys.privateKey);
    return { seq, hash, time, public_key: this.publicKey, signature: Buffer.from(signature).toString('hex') };
  }

  /** An export header's signature (hex), over shared/src/audit-export.ts's headerText. */
  signHeader(format: string, since: string, from: AuditCheckpoint): string {
    return Buffer.from(signDetached(headerText(format, since, from), this.keys.privateKey)).toString('hex');
  }

  /** An exported entry's signature (hex), over shared/src/audit-export.ts's entryText. */
  signEntry(entry: AuditEntryMessage): string {
    return Buffer.from(signDetached(entryText(entry), this.keys.privateKey)).toString('hex');
  }

  /** Steps (1)-(3). */
  async write(): Promise<AuditCheckpoint> {
    const head = await this.options.store.auditHead(); // (1)
    const checkpoint = this.sign(head.seq, head.hash); // (2)
    this.lastSeq = head.seq;
    try {
      this.options.publish(AUDIT_CHECKPOINT_SUBJECT, Buffer.from(JSON.stringify(checkpoint))); // (3)
    } catch (error) {
      this.options.log.warn({ err: (error as Error).message }, 'publishing an audit checkpoint failed; it is in the log');
    }
    this.options.log.info({ audit_checkpoint: checkpoint, head: `${head.seq}:${head.hash}` }, 'audit checkpoint');
    return checkpoint;
  }

  start(): void {
    if (this.options.intervalMs <= 0) return;
    this.timer = setInterval(() => {
      void this.options.store
        .auditHead()
        .then((head) => (head.seq !== this.lastSeq ? this.write() : undefined))
        .catch((error: Error) => this.options.log.warn({ err: error.message }, 'writing an audit checkpoint failed'));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
