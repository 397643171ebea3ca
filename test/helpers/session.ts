/**
 * A raw AgentService.Session to a test daemon: every message the daemon sends is kept, so a test
 * sees each push, answer and error as it came. `next(match, from)` waits for the first response
 * (from index `from` on) that matches; `status` is the call's end.
 */
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../../shared/src/proto.js';
import type { TestDaemon } from './daemon.js';

export function session(t: { teardown(fn: () => unknown): void }, d: Pick<TestDaemon, 'daemon'>, token: string) {
  const client = new (loadServices().AgentService)(d.daemon.address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  const call = (client as any).Session(metadata) as grpc.ClientDuplexStream<object, any>;
  const responses: any[] = [];
  const waiters: Array<() => void> = [];
  call.on('data', (r: unknown) => {
    responses.push(r);
    waiters.splice(0).forEach((w) => w());
  });
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => {});
  const next = async (match: (r: any) => boolean, from = 0) => {
    for (;;) {
      const found = responses.slice(from).find(match);
      if (found) return found;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  /** The answer to request `id`. */
  const answer = (id: number) => next((r) => Number(r.id) === id);
  t.teardown(() => {
    call.cancel();
    client.close();
  });
  return { call, responses, next, answer, status, close: () => client.close() };
}
