export { App, type AppOverrides } from './app.js';
export { loadConfig, ConfigError, type ApiKey, type ApiScope, type Config } from './config/config.js';
export type { Envelope, Notification, NotificationInput } from './notification/schema.js';
export type { Missed, RegisterRequest, RegisterResponse } from './gateway/protocol.js';
export { PushCenterClient, PushCenterError } from './client/index.js';
export type {
  LifecycleEvents,
  Message,
  MessageHandler,
  PushCenterClientOptions,
  PushCenterErrorCode,
  Registration,
  TokenSource,
} from './client/index.js';
export { mintToken } from './gateway/jwt-auth.js';
