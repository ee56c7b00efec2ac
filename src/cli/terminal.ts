import { parseArgs, type ParseArgsConfig } from 'node:util';

/** What a command talks to: handed in by the entry point, so no command reaches for `process` itself. */
export interface Terminal {
  env: NodeJS.ProcessEnv;
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  /** Aborted on SIGINT or SIGTERM, for a command that stops cleanly between two steps (when it is given). */
  interrupted?: AbortSignal;
}

/** A failure the user can act on: printed as one message without a stack, the process exits with `exitCode`. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2 = 1) {
    super(message);
    this.name = 'CliError';
  }
}

/** The command line itself is wrong (unknown command or option, missing value): exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
type Strict<T extends OptionsConfig> = { args: string[]; options: T; strict: true; allowPositionals: false };
/** The values `parseOptions` finds for options `T`, typed from them. */
export type OptionValues<T extends OptionsConfig> = ReturnType<typeof parseArgs<Strict<T>>>['values'];

/** `parseArgs` in strict mode, without positionals; its errors (which name the option) become `UsageError`s. */
export function parseOptions<const T extends OptionsConfig>(args: string[], options: T): OptionValues<T> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    const message = (err as Error).message;
    throw new UsageError(message.charAt(0).toLowerCase() + message.slice(1));
  }
}

/**
 * `parseArgs` has no options whose value may be left out: `--name` alone becomes `--name=` (an empty
 * value: "use the default") and `--name VALUE` becomes `--name=VALUE` when VALUE is not an option.
 */
export function withOptionalValue(args: string[], name: string): string[] {
  const result: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      result.push(...args.slice(i));
      break;
    }
    if (arg !== name) {
      result.push(arg);
      continue;
    }
    const next = args[i + 1];
    if (next !== undefined && !next.startsWith('-')) {
      result.push(`${name}=${next}`);
      i += 1;
    } else {
      result.push(`${name}=`);
    }
  }
  return result;
}

export { redact } from '../util/redact.js';

/** An error's message, with the cause a network error hides behind "fetch failed" and the like. */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as (Error & { code?: string }) | undefined;
  if (!(cause instanceof Error)) return err.message;
  // A refused connection to every address of a name is an AggregateError with an empty message.
  const detail = cause.message || cause.code || cause.name;
  return cause.code && !detail.includes(cause.code) ? `${cause.code} ${detail}` : detail;
}
