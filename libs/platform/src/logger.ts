import type { LoggerService } from '@nestjs/common';
import { currentCorrelationId } from './correlation.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const PRIVATE_KEY_MARKER = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; stdout by default. Tests pass a collector. */
  write?: (line: string) => void;
}

function currentLevel(): LogLevel {
  const fromEnv = process.env.CL_LOG_LEVEL;
  return fromEnv === 'debug' || fromEnv === 'warn' || fromEnv === 'error' ? fromEnv : 'info';
}

/** Serialises errors readably and refuses to print private keys, whatever a caller passes in. */
function safeValue(value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: redact(value.message), stack: value.stack };
  if (typeof value === 'string') return redact(value);
  return value;
}

function redact(text: string): string {
  return PRIVATE_KEY_MARKER.test(text) ? '[redacted: contained a private key]' : text;
}

/** JSON-lines logger: one object per line with time, level, service, message and fields. */
export function createLogger(service: string, options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const threshold = LEVEL_RANK[options.level ?? currentLevel()];
  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    if (LEVEL_RANK[level] < threshold) return;
    const entry: Record<string, unknown> = {
      time: new Date().toISOString(),
      level,
      service,
      msg: redact(message),
    };
    // A line logged while handling a request or a command names it, so one grep finds all it caused.
    const correlationId = currentCorrelationId();
    if (correlationId !== undefined) entry.correlationId = correlationId;
    for (const [key, value] of Object.entries({ ...bound, ...fields })) entry[key] = safeValue(value);
    let line: string;
    try {
      line = JSON.stringify(entry);
    } catch {
      line = JSON.stringify({
        time: entry.time,
        level,
        service,
        msg: entry.msg,
        note: 'fields not serialisable',
      });
    }
    write(redact(line));
  };
  return {
    debug: (message, fields) => emit('debug', message, fields),
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
    child: (fields) => createLogger(service, options, { ...bound, ...fields }),
  };
}

/** Routes NestJS's own log calls into the structured logger. */
export class NestJsonLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  log(message: unknown, context?: string): void {
    this.logger.info(String(message), { context });
  }
  error(message: unknown, trace?: string, context?: string): void {
    this.logger.error(String(message), { context, trace });
  }
  warn(message: unknown, context?: string): void {
    this.logger.warn(String(message), { context });
  }
  debug(message: unknown, context?: string): void {
    this.logger.debug(String(message), { context });
  }
  verbose(message: unknown, context?: string): void {
    this.logger.debug(String(message), { context });
  }
}

/** Nest injection token for the service's Logger. */
export const LOGGER = Symbol('LOGGER');
