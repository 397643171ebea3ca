/**
 * How the gRPC server decodes requests, so a bad message is the caller's fault, told as such:
 * (1) each method's request is decoded with 64-bit integers kept exact (protobufjs `Long`), not
 *     rounded to the nearest double as `longs: Number` would;
 * (2) every 64-bit integer is turned into a number only when it is a safe integer (|n| ≤ 2^53 − 1);
 *     a larger one is refused naming the field, so 9007199254740993 never becomes …992;
 * (3) a decoding failure does not throw (grpc-js would answer INTERNAL "Error deserializing
 *     request"): the deserializer returns a MalformedRequest, answered INVALID_ARGUMENT — for a
 *     unary call by the handler once the caller is authenticated (so a caller without a token
 *     learns nothing about its message), for a stream's message by the interceptor below, before
 *     the stream's handler sees it.
 * INTERNAL stays for our own faults.
 * (4) A response may be handed over already encoded (`EncodedResponse`), so one message written to
 *     many streams (a push to every agent of a deployment) is serialized once.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import Long from 'long';
import { InvalidArgumentError, type LockboxError } from '../../../shared/src/errors.js';
import { loaderOptions, protoFiles, type LockboxServices } from '../../../shared/src/proto.js';

/** What the deserializer hands on instead of a request it could not accept. */
export class MalformedRequest {
  constructor(readonly error: LockboxError) {}
}

/** (4) Bytes the serializer passes through as they are. */
export class EncodedResponse {
  constructor(readonly bytes: Buffer) {}
}

/** (4) Encodes `response` once with `method`'s serializer, for writing to many calls. */
export function responseEncoder(method: { responseSerialize: (value: any) => Buffer }): (response: object) => EncodedResponse {
  return (response) => new EncodedResponse(method.responseSerialize(response));
}

/** `secret.data["k"]`, `items[2].update.expected_version`. */
function fieldPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (/^[A-Za-z_]\w*$/.test(key)) return parent ? `${parent}.${key}` : key;
  return `${parent}[${JSON.stringify(key.slice(0, 64))}]`;
}


/** (2) The decoded message with every Long made a number; out-of-range ones refused by field. */
export function exactNumbers(value: unknown, path: string): unknown {
  if (Long.isLong(value)) {
    const fast = (value as Long).toNumber(); // exact whenever it is a safe integer; anything larger is not
    if (Number.isSafeInteger(fast)) return fast;
    const exact = BigInt((value as Long).toString()); // signed or unsigned, as the field is
    if (exact > BigInt(Number.MAX_SAFE_INTEGER) || exact < BigInt(Number.MIN_SAFE_INTEGER))
      throw new InvalidArgumentError(path || 'request', `${exact} is out of range (the API takes integers up to ${Number.MAX_SAFE_INTEGER})`);
    return Number(exact);
  }
  if (Array.isArray(value)) return value.map((item, i) => exactNumbers(item, fieldPath(path, i)));
  if (value && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const object = value as Record<string, unknown>;
    for (const key of Object.keys(object)) object[key] = exactNumbers(object[key], fieldPath(path, key));
  }
  return value;
}

/** (1)(3) A method's deserializer that never throws. */
function acceptingDeserializer(method: string, decode: (buffer: Buffer) => unknown): (buffer: Buffer) => unknown {
  return (buffer) => {
    let decoded: unknown;
    try {
      decoded = decode(buffer);
    } catch {
      return new MalformedRequest(new InvalidArgumentError('request', `is not a valid protobuf message for ${method}`, 'MALFORMED_REQUEST'));
    }
    try {
      return exactNumbers(decoded, '');
    } catch (error) {
      return new MalformedRequest(error as LockboxError);
    }
  };
}

/** The services as the server registers them: the same definitions with (1)–(3) deserializers. */
export function serverServices(): LockboxServices {
  const { longs: _rounded, ...exact } = loaderOptions;
  const definition = protoLoader.loadSync(protoFiles, exact);
  for (const service of Object.values(definition)) {
    if (!('format' in service) && typeof service === 'object')
      for (const [name, method] of Object.entries(service as protoLoader.ServiceDefinition)) {
        (method as { requestDeserialize: (b: Buffer) => unknown }).requestDeserialize = acceptingDeserializer(name, method.requestDeserialize);
        const serialize = method.responseSerialize as (value: unknown) => Buffer;
        (method as { responseSerialize: (value: unknown) => Buffer }).responseSerialize = (value) => (value instanceof EncodedResponse ? value.bytes : serialize(value)); // (4)
      }
  }
  const root = grpc.loadPackageDefinition(definition) as unknown as { lockbox: { v1: LockboxServices } };
  return root.lockbox.v1;
}

/** (3) The request, or its MalformedRequest's error thrown. */
export function acceptedRequest<T>(request: T | MalformedRequest): T {
  if (request instanceof MalformedRequest) throw request.error;
  return request;
}

/** (3) On streams: answers a MalformedRequest with the status `refuse` makes of its error; passes everything else on. */
export function malformedRequestInterceptor(refuse: (method: string, error: LockboxError) => grpc.StatusObject): grpc.ServerInterceptor {
  return (descriptor, call) =>
    !descriptor.requestStream ? new grpc.ServerInterceptingCall(call) : new grpc.ServerInterceptingCall(call, {
      start(next) {
        next(
          new grpc.ServerListenerBuilder()
            .withOnReceiveMessage((message, forward) => {
              if (message instanceof MalformedRequest) call.sendStatus(refuse(descriptor.path, message.error));
              else forward(message);
            })
            .build(),
        );
      },
    });
}
