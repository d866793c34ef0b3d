/**
 * The API's structured logger (pino, JSON lines). Credentials never reach a log line, by two layers:
 * - `redact` removes known secret-bearing fields wherever code logs them (headers, tokens, keys, config);
 * - a last pass over every serialized line masks anything shaped like a credential (an API key, a session
 *   token, a Bearer value, an LLM provider key) that slipped into a message, an error or an unexpected
 *   field. The first layer is exact; the second is the net under it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

/** Field paths censored wherever they appear (pino `redact` syntax; `*` is one level). */
const REDACTED_PATHS: readonly string[] = [
  'authorization',
  'cookie',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'request.headers.authorization',
  'request.headers.cookie',
  'res.headers["set-cookie"]',
  '*.authorization',
  '*.cookie',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'apiKey',
  '*.apiKey',
  'sessionToken',
  '*.sessionToken',
  'password',
  '*.password',
  'connectionParams',
  '*.connectionParams',
  'config.llm.apiKey',
  'llm.apiKey',
  'databaseUrl',
  '*.databaseUrl',
  'privateKey',
  '*.privateKey',
  'config.relayer.privateKey',
];

const REDACTED = '[REDACTED]';

/**
 * Credential shapes: API keys (`cm_` + 43 base64url), session tokens (`cms_` + 43), any Bearer value, and
 * `sk-...` provider keys. An API key's display prefix (`cm_` + 8) is not a secret and stays readable.
 */
const CREDENTIAL_PATTERNS: readonly [RegExp, string][] = [
  [/\bcms?_[A-Za-z0-9_-]{20,}/g, `cm_${REDACTED}`],
  [/\b(Bearer)\s+[A-Za-z0-9._~+/=-]+/gi, `$1 ${REDACTED}`],
  [/\bsk-[A-Za-z0-9_-]{12,}/g, `sk-${REDACTED}`],
];

/** Masks credential-shaped substrings of a serialized log line. */
function scrubCredentials(line: string): string {
  let out = line;
  for (const [pattern, replacement] of CREDENTIAL_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

export interface CreateLoggerOptions {
  level?: string;
  /** Where lines go; stdout by default. Tests pass a stream to read the output back. */
  destination?: DestinationStream;
  /** Bound on every line, e.g. `{ service: 'api' }`. */
  base?: Record<string, unknown>;
}

/**
 * @example
 * const logger = createLogger({ level: config.logLevel });
 * logger.info({ requestId }, 'request done');
 */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const pinoOptions: LoggerOptions = {
    level: options.level ?? 'info',
    base: options.base ?? { service: 'api' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACTED_PATHS], censor: REDACTED },
    hooks: { streamWrite: scrubCredentials },
  };
  return options.destination ? pino(pinoOptions, options.destination) : pino(pinoOptions);
}

/** Compares a presented secret with the expected one in constant time (hashes first: lengths differ). */
export function sameSecret(presented: string | null | undefined, expected: string): boolean {
  if (!presented) return false;
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(presented), digest(expected));
}
