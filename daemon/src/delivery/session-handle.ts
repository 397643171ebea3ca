/**
 * One agent session as the session registry (session-registry.ts) keeps it, and the messages it
 * takes: what the agent holds or was last sent, its pending run (step 6 there), what it has not
 * ACKed yet (step 7), and the two comparisons every push starts with.
 */
import type { Principal } from '../security/auth.js';
import type { DeploymentRecord, SecretHead } from '../store/store.js';
import type { PushWave } from './push-wave.js';
import type { AwaitedAcks } from './rollout-tracker.js';

export interface Known {
  uid: string;
  version: number;
  digest: string;
}

/** How the registry talks to one agent's call (the gRPC boundary provides it). */
export interface SessionSink {
  /** Writes a response, or what `encode` made of one. */
  write(response: object): void;
  /** The response encoded once, to be written to many sessions (step 4). */
  encode(response: object): object;
  end(code: number, details: string): void;
}

export interface ResyncMessage {
  agent_id?: string;
  held?: Array<{ name?: string; uid?: string; version?: number; digest?: string }>;
  resync_interval_seconds?: number;
  one_shot?: boolean;
}

export interface AckMessage {
  nonce?: string;
  applied?: Array<{ name?: string; uid?: string; version?: number; applied_time?: string }>;
  nack_reason?: string;
  problems?: string[];
}

export interface Run {
  all: boolean;
  names: Set<string>;
  /** The resync request this run answers. */
  replyTo?: number;
  /** What the sessions reached by the same change share (step 4). */
  wave: PushWave;
}

export class SessionHandle {
  principal: Principal | undefined;
  deployment: DeploymentRecord | undefined;
  agentId: string | undefined;
  intervalSeconds = 60;
  /** Said on its resync: a `lockbox-agent once` run (service-agent.ts step (6)). */
  oneShot = false;
  readonly known = new Map<string, Known>();
  pending: Run | undefined;
  running = false;
  closed = false;
  pushes = 0;
  /** Step (7): what was pushed and not ACKed yet. */
  readonly awaited: AwaitedAcks = new Map();
  /** Tenant, resource group and name of the token's deployment (set with the principal). */
  deploymentKey: string | undefined;

  constructor(
    readonly sessionId: string,
    readonly token: string | undefined,
    readonly sink: SessionSink,
  ) {}
}

/** Step (3): the agent holds this version already (or a newer one of the same secret). */
export function holds(known: Known | undefined, head: SecretHead, digest: string): boolean {
  return !!known && known.uid === head.uid && (known.version > head.version || (known.version === head.version && (!known.digest || known.digest === digest)));
}

/** Step (4): what makes two sessions' pushes the same bytes. */
export function pushSignature(handle: SessionHandle, send: Array<{ head: SecretHead; digest: string }>, removed: string[], deploymentField: object): string {
  return [handle.deploymentKey, ...send.map(({ head, digest }) => `${head.resourceGroup}/${head.name}/${head.uid}/${head.version}/${digest}`), '-', ...removed, JSON.stringify(deploymentField)].join('\n');
}

/**
 * Session-registry step (6): queues `run` for a session, merged into what is already pending, so
 * nothing queued meanwhile is lost: `all` is OR-ed, names are united, the newer wave is kept, and
 * a resync still unanswered keeps its request id (an earlier one superseded gets an empty answer,
 * so the agent waiting on it is not left to time out). Every path that queues work goes through
 * here; replacing `pending` outright dropped resync answers queued while a push wave awaited.
 */
export function queueRun(handle: SessionHandle, run: Run): void {
  const pending = handle.pending;
  if (!pending) {
    handle.pending = run;
    return;
  }
  pending.all ||= run.all;
  if (run.wave.serial > pending.wave.serial) pending.wave = run.wave;
  for (const name of run.names) pending.names.add(name);
  if (run.replyTo !== undefined) {
    if (pending.replyTo !== undefined) handle.sink.write({ id: pending.replyTo, push: { nonce: '', secrets: [], removed: [], more: false } });
    pending.replyTo = run.replyTo;
  }
}
