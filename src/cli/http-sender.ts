import type { Outgoing, Sender } from './sender.js';
import { CliError, errorText, redact, UsageError } from './terminal.js';

/** A node that answers nothing within this long is taken as unreachable. */
const REQUEST_TIMEOUT_MS = 30_000;

export interface HttpSenderOptions {
  /** The node's base URL (`http://host:3000`) or the full `…/v1/notifications` URL. */
  url: string;
  /** Sent as `Authorization: Bearer <key>` (a node with `API_KEYS` set refuses requests without it). */
  apiKey: string | undefined;
  /** The node's `MAX_BATCH` and `HTTP_BODY_MAX_BYTES`: a request never holds more. */
  maxBatch: number;
  maxBodyBytes: number;
  /** The size of the largest notification that will be sent, so that a batch fits in one body. */
  largestBytes: number;
}

/** Publishes through `POST /v1/notifications` (PROTOCOL §6): 202 means the node enqueued the whole request. */
export class HttpSender implements Sender {
  readonly target: string;
  readonly batchSize: number;
  private readonly endpoint: URL;

  constructor(private readonly options: HttpSenderOptions) {
    this.endpoint = notificationsEndpoint(options.url);
    this.target = redact(this.endpoint);
    // An array body: brackets, and a comma between items.
    const fitting = Math.floor((options.maxBodyBytes - 2) / (options.largestBytes + 1));
    this.batchSize = Math.max(1, Math.min(options.maxBatch, fitting));
  }

  async send(batch: Outgoing[]): Promise<string[]> {
    // One notification goes as an object, so that a node answers it as such (413 rather than 400 when too large).
    const body = batch.length === 1 ? batch[0]!.body : `[${batch.map((item) => item.body).join(',')}]`;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    let status: number;
    let statusText: string;
    let text: string;
    let retryAfter: string | null;
    try {
      const response = await fetch(this.endpoint, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      ({ status, statusText } = response);
      retryAfter = response.headers.get('retry-after');
      text = await response.text();
    } catch (err) {
      throw this.unreachable(err);
    }
    if (status === 202) return acceptedIds(text, batch);
    throw new CliError(this.refusal(status, statusText, text, retryAfter));
  }

  async close(): Promise<void> {
    // Nothing held: fetch's idle connections close by themselves and do not keep the process alive.
  }

  private unreachable(err: unknown): CliError {
    if (err instanceof Error && err.name === 'TimeoutError') {
      return new CliError(`no answer from ${this.target} within ${REQUEST_TIMEOUT_MS / 1000} s; ` +
        'the request may or may not have been enqueued. Check the node\'s health (GET /readyz) and its logs.');
    }
    const text = errorText(err);
    if (text === 'bad port') {
      return new CliError(`cannot reach push-center at ${this.target}: fetch refuses port ${this.endpoint.port} ` +
        '(it is on the list of ports browsers block); run the node on another port');
    }
    return new CliError(`cannot reach push-center at ${this.target}: ${text}. ` +
      'Check that a node runs there (push-center start) and that --http points at it ' +
      '(or use --amqp to publish to RabbitMQ).');
  }

  private refusal(status: number, statusText: string, text: string, retryAfter: string | null): string {
    const answer = parseJson(text) as { error?: { code?: unknown; message?: unknown; reasons?: unknown }; message?: unknown } | undefined;
    const error = answer?.error;
    const message = typeof error?.message === 'string'
      ? error.message
      : typeof answer?.message === 'string' ? answer.message : text.trim().slice(0, 300) || '(empty body)';
    const lines = [`${this.target} answered ${status} ${statusText}: ${message}`];
    if (Array.isArray(error?.reasons)) {
      // Every copy of a --count batch is refused for the same reason: each reason once.
      const seen = new Set<string>();
      for (const item of error.reasons as Array<{ reason?: unknown; message?: unknown }>) {
        const line = `  ${String(item.reason)}: ${String(item.message)}`;
        if (!seen.has(line)) seen.add(line);
      }
      lines.push(...seen);
    }
    if (status === 401) lines.push('Pass the key with --api-key <key> or the PUSHCENTER_API_KEY environment variable.');
    if (status === 403) lines.push('Use a key whose API_KEYS entry grants publish (key:publish, or the key alone for every scope).');
    if (status === 404) lines.push(`Is ${this.endpoint.origin} a push-center node?`);
    if ((status === 429 || status === 503) && retryAfter) lines.push(`Retry in ${retryAfter} s.`);
    return lines.join('\n');
  }
}

/** `http://host:3000`, `http://host:3000/` and `http://host:3000/v1/notifications` all mean the same. */
export function notificationsEndpoint(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--http ${JSON.stringify(url)}: not a URL; e.g. http://localhost:3000`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`--http ${JSON.stringify(url)}: must start with http:// or https://`);
  }
  const path = parsed.pathname.replace(/\/+$/, '');
  if (!path.endsWith('/v1/notifications')) parsed.pathname = `${path}/v1/notifications`;
  return parsed;
}

function acceptedIds(text: string, batch: Outgoing[]): string[] {
  const answer = parseJson(text) as { ids?: unknown } | undefined;
  const ids = answer?.ids;
  if (Array.isArray(ids) && ids.length === batch.length && ids.every((id) => typeof id === 'string')) {
    return ids as string[];
  }
  // 202 from something that is not push-center's route: the request was taken, our ids stand.
  return batch.map((item) => item.id);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
