/**
 * A process holding some of bench/fanout.ts's light session clients: each opens an
 * AgentService.Session (to lockboxd, or to the bare baseline server), resyncs, and answers every
 * push with an ACK at once, writing no files. For each push it records the monotonic clock
 * (hrtime, shared by every process of the machine) at which the ACK was written.
 * Messages: in {start: {addr, token, count}} | {expect: version} | 'stop'; out {ready: true} | {version, seen: string[]} |
 * {failed: reason}.
 */
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../shared/src/proto.js';

const send = (message: object) => process.send!(message);
const seen = new Map<number, bigint[]>();
const calls: grpc.ClientDuplexStream<object, any>[] = [];
let count = 0;
let expected = -1;
let stopping = false;
let reconnects = 0;

function maybeReport(): void {
  const times = seen.get(expected);
  if (times && times.length === count) send({ version: expected, seen: times.map(String), reconnects });
}

process.on('message', async (message: { start?: { addr: string; token: string; count: number }; expect?: number } | 'stop') => {
  if (message === 'stop') {
    stopping = true;
    for (const call of calls) call.cancel();
    process.exit(0);
  }
  if (message.start) {
    const { addr, token } = message.start;
    count = message.start.count;
    const Client = loadServices().AgentService;
    // A few channels, as pods would each have their own connection; streams share them.
    const clients = Array.from({ length: 8 }, (_, i) => new Client(addr, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 8 << 20, 'grpc.channel_id': i } as never));
    let ready = 0;
    // As an agent does: a session that breaks is opened again and resyncs with what it holds, so
    // the daemon sends only what it missed (counted as a reconnect; its latency is when the
    // version finally came). One that cannot open at all (3 tries in a row) is reported, so the
    // run stops with a reason instead of waiting.
    const open = (i: number, state: { held: number; uid: string; resynced: boolean; tries: number }): void => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      const call = (clients[i % clients.length] as any).Session(metadata) as grpc.ClientDuplexStream<object, any>;
      calls[i] = call;
      let answered = false;
      call.on('error', (error: grpc.ServiceError) => {
        if (stopping) return;
        reconnects++;
        if (!answered && ++state.tries >= 3) return send({ failed: `session ${i}: ${error.code} ${error.details}` });
        setTimeout(() => open(i, state), 100);
      });
      call.on('data', (r: any) => {
        if (Number(r.id) === 1 && r.error) return send({ failed: `session ${i}: resync refused: ${r.error.error_code} ${r.error.message}` });
        if (!r.push) return;
        if (Number(r.id) === 1) {
          answered = true;
          state.tries = 0;
          if (!state.resynced) {
            state.resynced = true;
            ready++;
            if (ready === count) send({ ready: true });
          }
        }
        const secrets = r.push.secrets ?? [];
        const version = Math.max(0, ...secrets.map((p: any) => Number(p.secret?.version ?? 0)));
        call.write({ id: 0, ack: { nonce: r.push.nonce, applied: secrets.map((p: any) => ({ name: p.name, uid: p.secret?.uid, version: p.secret?.version })) } });
        if (version <= state.held) return;
        const first = state.held === 0;
        state.held = version;
        state.uid = secrets[0]?.secret?.uid ?? state.uid;
        if (first) return; // the first resync's answer
        const now = process.hrtime.bigint();
        if (!seen.has(version)) seen.set(version, []);
        seen.get(version)!.push(now);
        if (version === expected) maybeReport();
      });
      const held = state.held ? [{ name: 'bench', uid: state.uid, version: state.held }] : [];
      call.write({ id: 1, resync: { agent_id: `bench-${process.pid}-${i}`, held, resync_interval_seconds: 3600 } });
    };
    for (let i = 0; i < count; i++) {
      open(i, { held: 0, uid: '', resynced: false, tries: 0 });
      if (i % 200 === 199) await new Promise((r) => setImmediate(r));
    }
  }
  if (message.expect !== undefined) {
    expected = message.expect;
    maybeReport();
  }
});
