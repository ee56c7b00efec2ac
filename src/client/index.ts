/**
 * The push-center client SDK (PROTOCOL §3), for browsers and Node: `PushCenterClient` and its types.
 * Nothing here imports Node built-ins, so bundlers can take it as it is (see `bundle.ts`).
 */
export {
  PushCenterClient,
  PushCenterError,
  type LifecycleEvents,
  type Message,
  type MessageHandler,
  type PushCenterClientOptions,
  type PushCenterErrorCode,
  type Registration,
  type TokenSource,
} from './client.js';
export type { Listenable } from './emitter.js';
export type { Envelope } from '../notification/schema.js';
export type { Missed, TokenExpired } from '../gateway/protocol.js';
