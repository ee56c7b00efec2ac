import type { Identity } from './protocol.js';

/**
 * Proves who a socket is from its handshake (`auth` of socket.io-client). The embedded default has no
 * authentication; the JWT authenticator (PROTOCOL §3) plugs in here.
 */
export interface Authenticator {
  readonly enabled: boolean;
  /**
   * Resolves the identity the handshake proves (undefined when authentication is off);
   * rejects when it proves none, and the connection fails with `unauthorized`.
   */
  authenticate(auth: Record<string, unknown>): Promise<Identity | undefined>;
}

/** Anyone may connect and register any session id and groups. */
export const openAccess: Authenticator = {
  enabled: false,
  authenticate: async () => undefined,
};
