import { App } from './app.js';
import { ConfigError, loadConfig, type Config } from './config/config.js';
import { createLogger } from './observability/logger.js';

/** Entry point: read the configuration, start one node, stop it cleanly on SIGTERM / SIGINT. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const logger = createLogger(config.logLevel, config.nodeId);
  // Logged rather than fatal: a stray rejection (e.g. a publish while Redis is down) must not take the
  // node and every socket on it down.
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled promise rejection'));

  let app: App;
  try {
    app = await App.create(config, { logger });
  } catch (err) {
    fail(`start-up failed: ${(err as Error).message}`);
  }
  const stop = (signal: string) => {
    if (app.stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ signal }, 'signal received');
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await app.start();
  } catch (err) {
    await app.close().catch(() => undefined);
    fail(`start-up failed: ${(err as Error).message}`);
  }
}

/** Start-up errors go straight to stderr: the logger may be asynchronous and the process exits now. */
function fail(message: string): never {
  process.stderr.write(`push-center: ${message}\n`);
  process.exit(1);
}

void main();
