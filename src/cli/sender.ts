/** One notification ready to go: its id and its JSON body. */
export interface Outgoing {
  id: string;
  body: string;
  /** Its routing key on a sharded ingest (`shardKey`); HTTP does not need it. */
  shardKey?: string;
}

/**
 * Where `push-center send` publishes: the HTTP API of a node, or the RabbitMQ queue the nodes consume.
 * Both engines give the same guarantee: `send` resolves only once every notification of the batch was
 * accepted for delivery (HTTP 202, RabbitMQ publisher confirm), and rejects with a `CliError` that says
 * what went wrong and what to check.
 */
export interface Sender {
  /** Where it sends, for messages (no password). */
  readonly target: string;
  /** Notifications per `send` call. */
  readonly batchSize: number;
  /** Resolves with the ids accepted, in order. */
  send(batch: Outgoing[]): Promise<string[]>;
  close(): Promise<void>;
}
