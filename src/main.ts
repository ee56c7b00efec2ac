import { App } from './app.js';
import { ConfigError, loadConfig } from './config/config.js';

/** Entry point: read the configuration, start one node, stop it cleanly on SIGTERM / SIGINT. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`push-center: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const app = new App(config);
  const stop = (signal: string) => {
    if (app.stopping) {
      app.logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    app.logger.info({ signal }, 'signal received');
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('unhandledRejection', (err) => app.logger.error({ err }, 'unhandled promise rejection'));
  try {
    await app.start();
  } catch (err) {
    app.logger.fatal({ err }, `start-up failed: ${(err as Error).message}`);
    await app.close().catch(() => undefined);
    process.exit(1);
  }
}

void main();
