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

function maybeReport(): void {
  const times = seen.get(expected);
  if (times && times.length === count) send({ version: expected, seen: times.map(String) });
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
    // A session that fails before its first push is opened again (a few times), as an agent
    // would; one that still fails is reported, so the run stops with a reason instead of waiting.
    const open = (i: number, attempt: number): void => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      const call = (clients[i % clients.length] as any).Session(metadata) as grpc.ClientDuplexStream<object, any>;
      calls[i] = call;
      let resynced = false;
      call.on('error', (error: grpc.ServiceError) => {
        if (resynced || stopping) return;
        if (attempt < 3) open(i, attempt + 1);
        else send({ failed: `session ${i}: ${error.code} ${error.details}` });
      });
      let held = 0;
      call.on('data', (r: any) => {
        if (Number(r.id) === 1 && r.error) return send({ failed: `session ${i}: resync refused: ${r.error.error_code} ${r.error.message}` });
        if (!r.push) return;
        if (Number(r.id) === 1) {
          resynced = true;
          ready++;
          if (ready === count) send({ ready: true });
        }
        const version = Math.max(0, ...(r.push.secrets ?? []).map((p: any) => Number(p.secret?.version ?? 0)));
        call.write({ id: 0, ack: { nonce: r.push.nonce, applied: (r.push.secrets ?? []).map((p: any) => ({ name: p.name, uid: p.secret?.uid, version: p.secret?.version })) } });
        if (Number(r.id) === 1 || version <= held) return;
        held = version;
        const now = process.hrtime.bigint();
        if (!seen.has(version)) seen.set(version, []);
        seen.get(version)!.push(now);
        if (version === expected) maybeReport();
      });
      call.write({ id: 1, resync: { agent_id: `bench-${process.pid}-${i}`, held: [], resync_interval_seconds: 3600 } });
    };
    for (let i = 0; i < count; i++) {
      open(i, 0);
      if (i % 200 === 199) await new Promise((r) => setImmediate(r));
    }
  }
  if (message.expect !== undefined) {
    expected = message.expect;
    maybeReport();
  }
});
