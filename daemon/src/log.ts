/**
 * JSON logs (pino) on stdout, in the format of shared/src/log-format.ts. Nothing that can hold a secret value is ever passed to the logger; the
 * redaction list is a second line of defence for fields that should never appear.
 */
import { pino, type Logger } from 'pino';
import { jsonLogOptions } from '../../shared/src/log-format.js';

export type { Logger };

export const redactPaths = [
  'data',
  '*.data',
  'value',
  '*.value',
  'values',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'x-api-key',
  '*["x-api-key"]',
  'password',
  '*.password',
];

export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream | number } = {}): Logger {
  const destination = options.destination ?? 1;
  return pino(
    { ...jsonLogOptions('lockboxd', options.level), redact: { paths: redactPaths, censor: '[redacted]' } },
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination,
  );
}
