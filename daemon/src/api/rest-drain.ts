/**
 * Answering a body over the limit so that every client reads the answer. Many clients (Python's
 * urllib, Node's fetch on a slow path) send the whole body before they read anything; a server
 * that answers 413 and closes while body bytes are still arriving makes the kernel reset the
 * connection, and the client reports a reset instead of the 413. So the gateway:
 * 1. reads and discards the rest of the body — Content-Length or chunked alike — up to
 *    `maxDrainBytes` and for at most `maxDrainMs`;
 * 2. then answers 413 with `Connection: close`: nothing is left unread, so the close is a clean
 *    FIN the client sees after the answer.
 * A body past the drain cap is answered at once and the connection closed (the client may see a
 * reset; it sent far more than the limit).
 */
import type { IncomingMessage } from 'node:http';

export const maxDrainBytes = 64 * 1024 * 1024;
export const maxDrainMs = 10_000;

/** (1) Resolves once the request's body has ended, or the caps are reached, or the socket closed. */
export function drainRequest(request: IncomingMessage): Promise<void> {
  if (request.complete || request.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let read = 0;
    const finish = () => {
      clearTimeout(timer);
      request.off('data', onData).off('end', finish).off('close', finish).off('error', finish);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > maxDrainBytes) finish();
    };
    const timer = setTimeout(finish, maxDrainMs);
    timer.unref();
    request.on('data', onData).on('end', finish).on('close', finish).on('error', finish);
    request.resume();
  });
}
