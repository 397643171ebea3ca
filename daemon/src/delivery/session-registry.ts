/**
 * The daemon's side of delivery, xDS-style: who holds which version, and pushing what differs.
 * Each open AgentService.Session is a handle here, indexed by its deployment. The registry keeps,
 * per session, what the agent holds or was last sent (name → uid, version, digest).
 * 1. Resync: the agent says what it holds; that replaces what the registry knew, and the answer
 *    (same request id) is a push of only what differs, with the deployment's secret list.
 * 2. Changes: the change feed names a secret (tenant, resource group, name) or a deployment; each
 *    session whose deployment resolves that name (its own group, or tenant-wide) is compared
 *    again, for that name only; a deployment change re-reads the deployment and compares all.
 * 3. Comparing decrypts nothing: a name is sent when the version the deployment resolves now has
 *    another uid, a higher version, or (same version) another digest than what the agent holds.
 *    A repeated change (own commit, then its NATS notice) finds nothing to send.
 * 4. Before values leave: the token is checked again (a revoked token ends the session), each
 *    version is opened once per wave (a short cache, so a rotation fanned out to N agents
 *    decrypts once), and every delivery is audited as `secret.deliver` through the read audit
 *    log (identical deliveries in one write share one counted entry; in durable mode a value
 *    leaves only once its record is on disk). The sessions one change reaches share a wave
 *    (push-wave.ts): one token check per token, one head read per name, one audit entry per
 *    (token, version), and one encoded push per distinct content, written to each stream.
 * 5. A push is split into pages of at most PAGE_BYTES of values (one secret is at most 1 MiB),
 *    all with one nonce and `more` on all but the last; each page fits gRPC's default limit.
 * 6. Runs of one session never overlap: what arrives during one is merged into the next (with
 *    the newer wave).
 * 7. What a change pushed is a rollout, until each session ACKs it (rollout-tracker.ts).
 * 8. A change of one secret reaches the sessions that have nothing running in one pass
 *    (pushToIdle) rather than a run each: at 10,000 sessions a run's promises and awaits cost
 *    more than the comparison itself.
 */
import { randomUUID } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { FailedPreconditionError, InvalidArgumentError, LockboxError, NotFoundError, PermissionDeniedError } from '../../../shared/src/errors.js';
import { checkSecretName } from '../../../shared/src/validate.js';
import { auditDraft } from '../security/audit.js';
import type { Principal, TokenAuthority } from '../security/auth.js';
import { ReadAuditLog } from '../security/read-audit.js';
import type { CallContext } from '../services/context.js';
import { deploymentMessage, secretMessage } from '../services/messages.js';
import type { AgentService } from '../services/service-agent.js';
import type { SecretsService } from '../services/service-secrets.js';
import type { DeploymentRecord, SecretHead, Store } from '../store/store.js';
import type { ChangeFeed, FeedChange } from './change-feed.js';
import { digestOf, PushWave } from './push-wave.js';
import { RolloutTracker } from './rollout-tracker.js';
import { holds, pushSignature, queueRun, SessionHandle, type AckMessage, type Known, type ResyncMessage, type Run, type SessionSink } from './session-handle.js';

export { digestOf } from './push-wave.js';
export { SessionHandle, type AckMessage, type ResyncMessage, type SessionSink } from './session-handle.js';

/** Values per page of a push (step 5). */
export const PAGE_BYTES = 3 * 1024 * 1024;
const MAX_HELD = 1000;
/** How long an opened version stays in the wave cache (step 4). */
const OPENED_TTL_MS = 2000;

export interface SessionRegistryOptions {
  store: Store;
  secrets: SecretsService;
  auth: TokenAuthority;
  agents: AgentService;
  feed: ChangeFeed;
  durableAudit: boolean;
  onBackgroundError: (error: Error) => void;
  /** Step (7): a rollout every session ACKed, seconds from its commit. */
  onRolloutConverged?: (seconds: number) => void;
}

export class SessionRegistry {
  private readonly byScope = new Map<string, Set<SessionHandle>>();
  private readonly byTenant = new Map<string, Set<SessionHandle>>();
  private readonly opened = new Map<string, Promise<Record<string, Uint8Array>>>();
  private readonly deliveries: ReadAuditLog;
  private readonly stopListening: () => void;
  /** Step (7). */
  readonly rollouts: RolloutTracker;
  /** Values pushed since start (one per secret and session). */
  delivered = 0;

  constructor(private readonly options: SessionRegistryOptions) {
    this.deliveries = new ReadAuditLog(options.store, options.durableAudit, options.onBackgroundError);
    this.rollouts = new RolloutTracker(options.onRolloutConverged ?? (() => {}));
    this.stopListening = options.feed.listen((change) => this.onChange(change));
  }

  get size(): number {
    let n = 0;
    for (const set of this.byTenant.values()) n += set.size;
    return n;
  }

  open(sessionId: string, token: string | undefined, sink: SessionSink): SessionHandle {
    return new SessionHandle(sessionId, token, sink);
  }

  close(handle: SessionHandle): void {
    if (handle.closed) return;
    handle.closed = true;
    if (handle.oneShot && handle.principal && handle.agentId !== undefined) this.options.agents.release(handle.principal, handle.agentId);
    this.unindex(handle);
    this.rollouts.closed(handle.awaited);
  }

  private index(handle: SessionHandle): void {
    const p = handle.principal!;
    const add = (map: Map<string, Set<SessionHandle>>, key: string) => {
      let set = map.get(key);
      if (!set) map.set(key, (set = new Set()));
      set.add(handle);
    };
    add(this.byScope, JSON.stringify([p.tenant, p.deploymentResourceGroup]));
    add(this.byTenant, p.tenant);
  }

  private unindex(handle: SessionHandle): void {
    const p = handle.principal;
    if (!p) return;
    const drop = (map: Map<string, Set<SessionHandle>>, key: string) => {
      const set = map.get(key);
      set?.delete(handle);
      if (set?.size === 0) map.delete(key);
    };
    drop(this.byScope, JSON.stringify([p.tenant, p.deploymentResourceGroup]));
    drop(this.byTenant, p.tenant);
  }

  /** Step (1). Resolves once the answer is written (or refused). */
  async resync(handle: SessionHandle, request: ResyncMessage, ctx: CallContext, replyTo: number): Promise<void> {
    const { principal } = ctx;
    if (principal.role !== 'agent') throw new PermissionDeniedError('this call is for agent tokens (lockbox token create --role agent)');
    if (handle.principal && handle.principal.tokenId !== principal.tokenId) throw new PermissionDeniedError('a session keeps the token it opened with');
    const agentId = request.agent_id ?? '';
    if (handle.agentId !== undefined && handle.agentId !== agentId) throw new InvalidArgumentError('agent_id', 'a session keeps the agent id of its first resync');
    const interval = request.resync_interval_seconds ?? 60;
    const held = request.held ?? [];
    if (held.length > MAX_HELD) throw new InvalidArgumentError('held', `at most ${MAX_HELD} entries`);
    const known = new Map<string, Known>();
    held.forEach((h, i) => {
      checkSecretName(h.name ?? '', `held[${i}].name`);
      const version = h.version ?? 0;
      if (!Number.isSafeInteger(version) || version < 0) throw new InvalidArgumentError(`held[${i}].version`, 'must be a whole number, 0 or more');
      if ((h.uid ?? '').length > 64 || (h.digest ?? '').length > 64) throw new InvalidArgumentError(`held[${i}]`, 'uid and digest are at most 64 characters');
      known.set(h.name!, { uid: h.uid ?? '', version, digest: h.digest ?? '' });
    });
    // Cap and roster (issue 11.6): throws past --max-agents-per-deployment. An open session counts
    // whatever it says; a one-shot one gives its place back when it closes (service-agent.ts step 6).
    this.options.agents.admit(principal, agentId, interval);
    handle.agentId = agentId;
    handle.intervalSeconds = interval;
    handle.oneShot = request.one_shot === true;
    if (!handle.principal) {
      handle.principal = principal;
      handle.deploymentKey = JSON.stringify([principal.tenant, principal.deploymentResourceGroup, principal.deployment]);
      if (!handle.closed) this.index(handle);
    }
    handle.known.clear();
    for (const [name, k] of known) handle.known.set(name, k);
    await this.schedule(handle, { all: true, names: new Set(), replyTo, wave: new PushWave() });
  }

  /** The agent's ACK or NACK: its rollout report. */
  async ack(handle: SessionHandle, request: AckMessage, ctx: CallContext): Promise<void> {
    if (handle.agentId === undefined) throw new FailedPreconditionError('send a resync before acknowledging pushes', 'FAILED_PRECONDITION');
    await this.options.agents.acknowledge(ctx, handle.agentId, handle.intervalSeconds, request, handle.oneShot);
    this.rollouts.acked(handle.awaited, request.applied ?? [], !!request.nack_reason); // (7)
  }

  /** Step (2). */
  private onChange(change: FeedChange): void {
    const wave = new PushWave(); // (4) shared by every session this change reaches
    if (change.kind === 'all') {
      for (const set of this.byTenant.values()) for (const handle of set) void this.schedule(handle, { all: true, names: new Set(), wave });
      return;
    }
    if (change.kind === 'deployment') {
      for (const handle of this.byScope.get(JSON.stringify([change.tenant, change.resourceGroup])) ?? [])
        if (handle.principal?.deployment === change.name) void this.schedule(handle, { all: true, names: new Set(), wave });
      return;
    }
    const candidates = change.resourceGroup === '*' ? this.byTenant.get(change.tenant) : this.byScope.get(JSON.stringify([change.tenant, change.resourceGroup]));
    const idle: SessionHandle[] = [];
    for (const handle of candidates ?? []) {
      if (handle.deployment && !handle.deployment.secrets.includes(change.name)) continue;
      if (handle.running || !handle.deployment) void this.schedule(handle, { all: false, names: new Set([change.name]), wave });
      else idle.push(handle);
    }
    if (idle.length) void this.pushToIdle(idle, change.name, wave);
  }

  /**
   * Step (8): one changed secret pushed to the sessions with nothing running, together. They are
   * marked running first (step 6: what arrives meanwhile waits as pending), then each is compared
   * and given the wave's push with no run of its own; one wait covers every delivery record
   * (durable audit) before the values leave. Anything but a new version of a resolved name (a
   * name gone) goes the per-session way.
   */
  private async pushToIdle(handles: SessionHandle[], name: string, wave: PushWave): Promise<void> {
    for (const handle of handles) handle.running = true;
    const sends: Array<{ handle: SessionHandle; head: SecretHead; digest: string; pages: Promise<object[]>; recorded: Promise<void> }> = [];
    try {
      for (const handle of handles) {
        if (handle.closed) continue;
        try {
          const principal = await wave.principal(handle.token, (token) => this.options.auth.authenticate(token)); // (4)
          const deployment = handle.deployment!;
          const head = await wave.head({ tenant: deployment.tenant, resourceGroup: deployment.resourceGroup }, name, (scope, n) => this.options.secrets.resolveHead(scope, n));
          const known = handle.known.get(name);
          if (!head) {
            if (known) queueRun(handle, { all: false, names: new Set([name]), wave }); // (6) merged with what arrived during the awaits
            continue;
          }
          const digest = digestOf(head);
          if (holds(known, head, digest)) continue; // (3)
          const send = [{ head, digest }];
          const pages = wave.push(pushSignature(handle, send, [], {}), () => this.encodedPush(handle, 0, send, [], {}));
          const ctx: CallContext = { principal, requestId: `${handle.sessionId}.push-${++handle.pushes}` };
          const { draft, key } = wave.delivery(principal, head, () => auditDraft(ctx, 'secret.deliver', head, head.name, head.version, 'ok'));
          const recorded = this.deliveries.record(draft, key);
          recorded.catch(() => {}); // awaited below, per session
          sends.push({ handle, head, digest, pages, recorded });
        } catch (caught) {
          this.refuse(handle, caught, undefined);
        }
      }
      for (const { handle, head, digest, pages, recorded } of sends) {
        try {
          const encoded = await pages;
          await recorded; // (4) on record before the value leaves
          if (handle.closed) continue;
          handle.known.set(head.name, { uid: head.uid, version: head.version, digest });
          for (const page of encoded) handle.sink.write(page);
          this.rollouts.pushed(handle.awaited, [head]); // (7)
          this.delivered++;
        } catch (caught) {
          this.refuse(handle, caught, undefined);
        }
      }
    } finally {
      for (const handle of handles) {
        handle.running = false;
        if (handle.pending && !handle.closed) {
          handle.running = true;
          void this.drain(handle);
        }
      }
    }
  }

  /** Step (6): merges `run` into what is pending and drains; resolves when this run's work is written. */
  private schedule(handle: SessionHandle, run: Run): Promise<void> {
    queueRun(handle, run); // (6)
    if (handle.running) return Promise.resolve();
    handle.running = true;
    return this.drain(handle);
  }

  private async drain(handle: SessionHandle): Promise<void> {
    try {
      while (handle.pending && !handle.closed) {
        const run = handle.pending;
        handle.pending = undefined;
        try {
          await this.compareAndPush(handle, run);
        } catch (caught) {
          this.refuse(handle, caught, run.replyTo);
        }
      }
    } finally {
      handle.running = false;
    }
  }

  private refuse(handle: SessionHandle, caught: unknown, replyTo: number | undefined): void {
    const error = caught instanceof LockboxError ? caught : undefined;
    if (error?.kind === 'UNAUTHENTICATED') {
      if (replyTo !== undefined) handle.sink.write({ id: replyTo, error: { code: error.grpcCode, error_code: error.code, message: error.message } });
      handle.sink.end(error.grpcCode, error.message);
      this.close(handle);
      return;
    }
    if (!error) this.options.onBackgroundError(caught as Error);
    const code = error?.grpcCode ?? GrpcStatus.INTERNAL;
    // Unasked (id 0): the agent learns why no push comes (e.g. its deployment was deleted).
    handle.sink.write({ id: replyTo ?? 0, error: { code, error_code: error?.code ?? 'INTERNAL', message: error?.message ?? 'internal error; see the daemon log' } });
  }

  /** Steps (3)-(5) and (7) for one session. */
  private async compareAndPush(handle: SessionHandle, run: Run): Promise<void> {
    const { wave } = run;
    const principal = await wave.principal(handle.token, (token) => this.options.auth.authenticate(token)); // (4) revocation and expiry
    const ctx: CallContext = { principal, requestId: `${handle.sessionId}.push-${++handle.pushes}` };
    const before = handle.deployment;
    if (run.all || !before) {
      const deployment = await this.options.store.getDeployment({ tenant: principal.tenant, resourceGroup: principal.deploymentResourceGroup }, principal.deployment);
      if (!deployment) throw new NotFoundError(`deployment "${principal.deployment}" of this agent token no longer exists`, 'DEPLOYMENT_NOT_FOUND');
      handle.deployment = deployment;
    }
    const deployment = handle.deployment!;
    const scope = { tenant: deployment.tenant, resourceGroup: deployment.resourceGroup };
    const listChanged = !before || before.secrets.join('\0') !== deployment.secrets.join('\0');
    const names = run.all ? new Set([...deployment.secrets, ...handle.known.keys()]) : run.names;
    const removed: string[] = [];
    const send: Array<{ head: SecretHead; digest: string }> = [];
    const resolved: Record<string, string> = {};
    for (const name of names) {
      const head = deployment.secrets.includes(name) ? await wave.head(scope, name, (s, n) => this.options.secrets.resolveHead(s, n)) : undefined;
      if (head) resolved[name] = head.resourceGroup;
      const known = handle.known.get(name);
      if (!head) {
        if (known) {
          removed.push(name);
          handle.known.delete(name);
        }
        continue;
      }
      const digest = digestOf(head);
      if (holds(known, head, digest)) continue; // (3)
      send.push({ head, digest });
    }
    if (!send.length && !removed.length && !listChanged && run.replyTo === undefined) return;
    const deploymentField = listChanged || run.replyTo !== undefined ? { deployment: deploymentMessage(deployment, resolved) } : {};
    // (4) The same content for sessions of one deployment: built and encoded once per wave. A
    // resync's answer carries its request id, so it is built for its session alone.
    const build = () => this.encodedPush(handle, run.replyTo ?? 0, send, removed, deploymentField);
    const pages = run.replyTo === undefined ? wave.push(pushSignature(handle, send, removed, deploymentField), build) : build();
    // (4) Each delivery on record before the value leaves (durable mode).
    const recorded = send.map(({ head }) => {
      const { draft, key } = wave.delivery(principal, head, () => auditDraft(ctx, 'secret.deliver', head, head.name, head.version, 'ok'));
      return this.deliveries.record(draft, key);
    });
    const encoded = await pages;
    await Promise.all(recorded);
    if (handle.closed) return;
    for (const { head, digest } of send) handle.known.set(head.name, { uid: head.uid, version: head.version, digest });
    for (const page of encoded) handle.sink.write(page);
    if (run.replyTo === undefined) this.rollouts.pushed(handle.awaited, send.map(({ head }) => head)); // (7)
    this.delivered += send.length;
  }

  /** Step (5): the push's pages, each encoded for the wire. */
  private async encodedPush(handle: SessionHandle, id: number, send: Array<{ head: SecretHead; digest: string }>, removed: string[], deploymentField: object): Promise<object[]> {
    const opened = await Promise.all(send.map(({ head, digest }) => this.openOnce(head, digest)));
    const nonce = randomUUID();
    const pages: Array<Array<{ name: string; secret: object; digest: string }>> = [[]];
    let bytes = 0;
    send.forEach(({ head, digest }, i) => {
      const size = Object.values(opened[i]).reduce((n, v) => n + v.byteLength, 0);
      if (bytes > 0 && bytes + size > PAGE_BYTES) { // (5)
        pages.push([]);
        bytes = 0;
      }
      bytes += size;
      pages[pages.length - 1].push({ name: head.name, secret: secretMessage(head, head.secretCreateTime, opened[i]), digest });
    });
    return pages.map((secrets, i) => {
      const last = i === pages.length - 1;
      return handle.sink.encode({ id, push: { nonce, secrets, removed: last ? removed : [], ...(last ? deploymentField : {}), more: !last } });
    });
  }

  /** Step (4): one decryption per version and wave. */
  private openOnce(head: SecretHead, digest: string): Promise<Record<string, Uint8Array>> {
    const key = `${head.uid}/${head.version}/${digest}`;
    let opened = this.opened.get(key);
    if (!opened) {
      opened = Promise.resolve().then(() => this.options.secrets.openRecord(head));
      this.opened.set(key, opened);
      setTimeout(() => this.opened.delete(key), OPENED_TTL_MS).unref();
      opened.catch(() => this.opened.delete(key));
    }
    return opened;
  }

  /** Writes delivery records still collected; the daemon calls it when it stops. */
  async stop(): Promise<void> {
    this.stopListening();
    await this.deliveries.flush();
  }
}
