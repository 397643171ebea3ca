/**
 * The rich error model gRPC clients read (https://google.aip.dev/193): a `google.rpc.Status`
 * holding a `google.rpc.ErrorInfo` whose `reason` is the stable code of docs/errors.md and whose
 * `domain` is `lockbox`, sent in the `grpc-status-details-bin` trailer. lockboxd writes it on
 * every failed call; the CLI reads it back to show the code.
 *
 * The three messages are declared here from their public definitions (googleapis
 * google/rpc/status.proto, error_details.proto; google/protobuf/any.proto) and encoded with
 * protobufjs, so no googleapis protos need to be shipped or served.
 */
import protobuf from 'protobufjs';

export const errorDomain = 'lockbox';
export const statusDetailsKey = 'grpc-status-details-bin';
const errorInfoTypeUrl = 'type.googleapis.com/google.rpc.ErrorInfo';

const definitions = {
  nested: {
    google: {
      nested: {
        protobuf: { nested: { Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } } } },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: 'string', id: 1 },
                domain: { type: 'string', id: 2 },
                metadata: { keyType: 'string', type: 'string', id: 3 },
              },
            },
          },
        },
      },
    },
  },
} as protobuf.INamespace;
const root = protobuf.Root.fromJSON(definitions);
const StatusType = root.lookupType('google.rpc.Status');
const ErrorInfoType = root.lookupType('google.rpc.ErrorInfo');

export interface ErrorInfo {
  /** The stable code, e.g. `SECRET_NOT_FOUND`. */
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

/** `google.rpc.Status{code, message, details: [Any(ErrorInfo)]}`, serialized. */
export function encodeStatusDetails(code: number, message: string, info: ErrorInfo): Buffer {
  const value = ErrorInfoType.encode(ErrorInfoType.fromObject(info)).finish();
  const status = StatusType.fromObject({ code, message, details: [{ type_url: errorInfoTypeUrl, value }] });
  return Buffer.from(StatusType.encode(status).finish());
}

/** The ErrorInfo of lockbox's domain in a serialized google.rpc.Status; undefined if none or unreadable. */
export function decodeErrorInfo(bytes: Uint8Array): ErrorInfo | undefined {
  try {
    const status = StatusType.toObject(StatusType.decode(bytes), { defaults: true }) as { details: Array<{ type_url: string; value: Uint8Array }> };
    for (const detail of status.details) {
      if (detail.type_url !== errorInfoTypeUrl) continue;
      const info = ErrorInfoType.toObject(ErrorInfoType.decode(detail.value), { defaults: true }) as ErrorInfo;
      if (info.domain === errorDomain) return info;
    }
  } catch {
    // A trailer that is not a google.rpc.Status (a proxy's, say) carries no code for us.
  }
  return undefined;
}
