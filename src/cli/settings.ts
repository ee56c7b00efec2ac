import { ConfigError, loadConfig, type Config } from '../config/config.js';
import { CliError, UsageError, redact } from './terminal.js';

export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

/**
 * The node's configuration code reads the settings a command shares with the nodes, so that it checks
 * exactly what a node checks. Only `names` are read: the others (authentication, NODE_ENV, …) are none
 * of the command's business, and a shell set up for a production node must not stop it.
 */
export function readConfig(env: NodeJS.ProcessEnv, names: readonly string[]): Config {
  const subset = Object.fromEntries(names.filter((name) => env[name] !== undefined).map((name) => [name, env[name]]));
  try {
    return loadConfig(subset);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message);
    throw err;
  }
}

/** An `--amqp` URL, checked: amqp:// or amqps://. */
export function amqpUrl(url: string): string {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new UsageError(`--amqp ${JSON.stringify(redact(url))}: not a URL; e.g. ${DEFAULT_AMQP_URL}`);
  }
  if (protocol !== 'amqp:' && protocol !== 'amqps:') {
    throw new UsageError(`--amqp ${JSON.stringify(redact(url))}: must start with amqp:// or amqps://`);
  }
  return url;
}
