/**
 * Loads proto/lockbox/v1/*.proto at run time. The files are found from this module's location
 * (walking up to the package root), so the same code works from the TypeScript sources and from
 * dist/ (tsc does not copy .proto files).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

function findProtoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'lockbox', 'v1', 'secrets.proto'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('lockbox: proto/lockbox/v1/secrets.proto not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export const protoRoot = findProtoRoot();
export const protoFiles = ['lockbox/v1/secrets.proto', 'lockbox/v1/access.proto', 'lockbox/v1/agent.proto'];

export const loaderOptions: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [protoRoot],
};

let cached: protoLoader.PackageDefinition | undefined;

export function loadPackageDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync(protoFiles, loaderOptions);
  return cached;
}

export interface LockboxServices {
  SecretsService: grpc.ServiceClientConstructor;
  KeysService: grpc.ServiceClientConstructor;
  TokensService: grpc.ServiceClientConstructor;
  DeploymentsService: grpc.ServiceClientConstructor;
  AuditService: grpc.ServiceClientConstructor;
  AgentService: grpc.ServiceClientConstructor;
  BackupService: grpc.ServiceClientConstructor;
}

export function loadServices(): LockboxServices {
  const root = grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as { lockbox: { v1: LockboxServices } };
  return root.lockbox.v1;
}
