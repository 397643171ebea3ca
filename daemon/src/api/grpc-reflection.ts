/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) that answers with the descriptors a real
 * protobuf compiler produced: `npm run build` runs `buf build` over proto/ (and the health and
 * reflection protos, see buf.yaml) into dist/proto/descriptors.binpb, and this service hands out
 * each file's bytes exactly as buf wrote them.
 *
 * Why not @grpc/reflection: it serves the descriptors proto-loader synthesizes (protobufjs), whose
 * map entries Go protobuf refuses ("incorrect implicit map entry name") and Python's C++ protobuf
 * refuses ("map_entry should not be set explicitly"), and it re-encodes every file, dropping
 * fields protobufjs does not know (proto3 `optional`).
 *
 * 1. Split the FileDescriptorSet into each file's raw bytes (field 1, repeated bytes).
 * 2. Decode each only to index it: file name, every symbol it declares (messages and nested
 *    messages, enums, services, methods), and its imports.
 * 3. Answer file_by_filename / file_containing_symbol with the file and all it imports,
 *    transitively, importer first; list_services with every service in the set.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { protoRoot } from '../../../shared/src/proto.js';

/** Where `npm run build` writes the compiled descriptors: dist/proto/ beside the package's proto/. */
export const descriptorSetFile = join(dirname(protoRoot), 'dist', 'proto', 'descriptors.binpb');

interface IndexedFile {
  name: string;
  bytes: Uint8Array;
  imports: string[];
}

/** The compiled descriptors, indexed for reflection's questions. */
export class DescriptorIndex {
  readonly files = new Map<string, IndexedFile>();
  readonly fileOfSymbol = new Map<string, IndexedFile>();
  readonly messageTypes = new Set<string>();
  readonly services: string[] = [];
  readonly set: Buffer;

  constructor(set: Buffer) {
    this.set = set;
    const reader = protobuf.Reader.create(set);
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if (tag >>> 3 !== 1 || (tag & 7) !== 2) {
        reader.skipType(tag & 7);
        continue;
      }
      this.add(reader.bytes()); // (1)
    }
  }

  private add(bytes: Uint8Array): void {
    const file = descriptor.FileDescriptorProto.decode(bytes) as unknown as FileShape; // (2)
    const indexed: IndexedFile = { name: file.name, bytes, imports: file.dependency ?? [] };
    this.files.set(file.name, indexed);
    const prefix = file.package ? `${file.package}.` : '';
    const addMessages = (scope: string, messages: MessageShape[] | undefined): void => {
      for (const message of messages ?? []) {
        const name = scope + message.name;
        this.fileOfSymbol.set(name, indexed);
        this.messageTypes.add(name);
        addMessages(`${name}.`, message.nestedType);
        for (const e of message.enumType ?? []) this.fileOfSymbol.set(`${name}.${e.name}`, indexed);
      }
    };
    addMessages(prefix, file.messageType);
    for (const e of file.enumType ?? []) this.fileOfSymbol.set(prefix + e.name, indexed);
    for (const service of file.service ?? []) {
      const name = prefix + service.name;
      this.services.push(name);
      this.fileOfSymbol.set(name, indexed);
      for (const method of service.method ?? []) this.fileOfSymbol.set(`${name}.${method.name}`, indexed);
    }
  }

  /** The file and everything it imports, transitively, the file first. (3) */
  withImports(file: IndexedFile): Uint8Array[] {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const visit = (f: IndexedFile): void => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      out.push(f.bytes);
      for (const name of f.imports) {
        const dep = this.files.get(name);
        if (dep) visit(dep);
      }
    };
    visit(file);
    return out;
  }
}

interface MessageShape {
  name: string;
  nestedType?: MessageShape[];
  enumType?: { name: string }[];
}
interface FileShape {
  name: string;
  package?: string;
  dependency?: string[];
  messageType?: MessageShape[];
  enumType?: { name: string }[];
  service?: { name: string; method?: { name: string }[] }[];
}

/** The compiled descriptors; a missing file says how to make it. */
export function loadDescriptorIndex(file = descriptorSetFile): DescriptorIndex {
  let set: Buffer;
  try {
    set = readFileSync(file);
  } catch (error) {
    throw new Error(`lockboxd: compiled descriptors ${file} not readable (${(error as NodeJS.ErrnoException).code ?? 'error'}); run \`npm run build\``, { cause: error });
  }
  return new DescriptorIndex(set);
}

interface ReflectionRequest {
  host?: string;
  message_request?: string;
  file_by_filename?: string;
  file_containing_symbol?: string;
  file_containing_extension?: { containing_type?: string; extension_number?: number };
  all_extension_numbers_of_type?: string;
  list_services?: string;
}

/** One answer; `original_request` and `valid_host` are filled in by the caller. */
export function answerReflection(index: DescriptorIndex, request: ReflectionRequest): Record<string, unknown> {
  const notFound = (message: string) => ({ error_response: { error_code: grpc.status.NOT_FOUND, error_message: message } });
  switch (request.message_request) {
    case 'list_services':
      return { list_services_response: { service: index.services.map((name) => ({ name })) } };
    case 'file_by_filename': {
      const file = index.files.get(request.file_by_filename ?? '');
      return file ? { file_descriptor_response: { file_descriptor_proto: index.withImports(file) } } : notFound(`file not found: ${String(request.file_by_filename).slice(0, 200)}`);
    }
    case 'file_containing_symbol': {
      const symbol = (request.file_containing_symbol ?? '').replace(/^\./, '');
      const file = index.fileOfSymbol.get(symbol);
      return file ? { file_descriptor_response: { file_descriptor_proto: index.withImports(file) } } : notFound(`symbol not found: ${symbol.slice(0, 200)}`);
    }
    case 'file_containing_extension':
      return notFound('no extensions are declared');
    case 'all_extension_numbers_of_type': {
      const type = (request.all_extension_numbers_of_type ?? '').replace(/^\./, '');
      return index.messageTypes.has(type) ? { all_extension_numbers_response: { base_type_name: type, extension_number: [] } } : notFound(`type not found: ${type.slice(0, 200)}`);
    }
    default:
      return { error_response: { error_code: grpc.status.UNIMPLEMENTED, error_message: 'unknown reflection request' } };
  }
}

/** Adds grpc.reflection.v1 and v1alpha, their definitions taken from the same compiled set. */
export function addReflection(server: grpc.Server, index = loadDescriptorIndex()): void {
  const definition = protoLoader.loadFileDescriptorSetFromBuffer(index.set, { keepCase: true, longs: Number, enums: String, defaults: false, oneofs: true });
  for (const version of ['v1', 'v1alpha']) {
    const service = definition[`grpc.reflection.${version}.ServerReflection`] as grpc.ServiceDefinition;
    server.addService(service, {
      ServerReflectionInfo: (stream: grpc.ServerDuplexStream<ReflectionRequest, unknown>) => {
        stream.on('data', (request: ReflectionRequest) => {
          stream.write({ valid_host: request.host ?? '', original_request: request, ...answerReflection(index, request) });
        });
        stream.on('end', () => stream.end());
        stream.on('error', () => stream.end());
      },
    });
  }
}
