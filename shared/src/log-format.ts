/**
 * One JSON log format for lockboxd and lockbox-agent (pino on stdout): the level by name
 * (`"level":"info"`), the time as ISO 8601 (`"time":"2026-12-03T14:20:00.000Z"`), and the
 * program in `service`, so a log shipper needs no per-program mapping.
 */
import { pino, type LoggerOptions } from 'pino';

export function jsonLogOptions(service: string, level = 'info'): LoggerOptions {
  return {
    level,
    base: { service },
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
}
