/** Reading gRPC request metadata, for the unary handlers and the agent sessions alike. */
import type * as grpc from '@grpc/grpc-js';

/** The first value of a metadata key as text, or undefined when it is absent. */
export function firstValue(metadata: grpc.Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return value === undefined ? undefined : value.toString();
}
