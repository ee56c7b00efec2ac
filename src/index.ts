export { App, type AppOverrides } from './app.js';
export { loadConfig, ConfigError, type Config } from './config/config.js';
export type { Envelope, Notification, NotificationInput } from './notification/schema.js';
export type { RegisterRequest, RegisterResponse } from './gateway/protocol.js';
