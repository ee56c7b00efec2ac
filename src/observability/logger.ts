import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines for machines; readable lines when a person watches a terminal. */
export function createLogger(level: string, nodeId: string, pretty = process.stdout.isTTY === true): Logger {
  return pino({
    level,
    base: { node: nodeId },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  });
}
