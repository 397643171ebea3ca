/**
 * `lockbox backup`: an online, consistent copy of the database, streamed to the caller.
 * 1. Only an operator tenant admin may take one (it holds every tenant), and each is audited.
 * 2. The store writes the copy to a new file in the data dir (mode 0600): SQLite's backup API
 *    copies pages while commits go on and yields one consistent snapshot. Values stay sealed by
 *    their data keys, those by the keyring, and the keyring by the root key, which is not in the
 *    file: a restore needs the root key too (README, Backup and restore).
 * 3. The file is sent in chunks, the last with the size and SHA-256, then removed.
 * PostgreSQL keeps its data outside lockboxd: pg_dump backs it up (FAILED_PRECONDITION here).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../../shared/src/errors.js';
import { auditDraft } from '../security/audit.js';
import { authorizeOperator } from '../security/auth.js';
import type { Store } from '../store/store.js';
import type { CallContext } from './context.js';

export interface BackupChunk {
  data: Buffer;
  done: boolean;
  size: number;
  sha256: string;
}

export class BackupService {
  constructor(
    private readonly store: Store,
    private readonly dataDir: string,
  ) {}

  async *backup(ctx: CallContext): AsyncGenerator<BackupChunk> {
    authorizeOperator(ctx.principal, 'back up the database'); // (1)
    if (!this.store.backup) throw new FailedPreconditionError('this lockboxd keeps its data in PostgreSQL: back it up with pg_dump (see the README)', 'BACKUP_NOT_SUPPORTED');
    await this.store.appendAudit([auditDraft(ctx, 'database.backup', { tenant: ctx.principal.tenant, resourceGroup: '' }, '', 0, 'ok')]);
    const path = join(this.dataDir, `.backup-${randomBytes(8).toString('hex')}.db`);
    try {
      await this.store.backup(path); // (2)
      const hash = createHash('sha256');
      let size = 0;
      for await (const piece of createReadStream(path, { highWaterMark: 64 * 1024 })) { // (3)
        const data = piece as Buffer;
        hash.update(data);
        size += data.length;
        yield { data, done: false, size: 0, sha256: '' };
      }
      yield { data: Buffer.alloc(0), done: true, size, sha256: hash.digest('hex') };
    } finally {
      rmSync(path, { force: true });
    }
  }
}
