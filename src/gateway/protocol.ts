import type { Server, Socket } from 'socket.io';
import type { Missed } from '../inbox/inbox.js';

export type { Missed };
import type { Envelope } from '../notification/schema.js';

/** The browser protocol of PROTOCOL §3 as types: what a client sends and what it gets back. */

export interface TokenExpired {
  code: 'token_expired';
  message: string;
}

export interface RegisterRequest {
  sessionId?: string;
  groups?: string | string[];
  /** Original message center alias of `sessionId`. */
  socketId?: string;
  /** Original message center alias of `groups`. */
  groupFlag?: string | string[];
}

export type RegisterErrorCode = 'invalid_request' | 'forbidden' | 'unavailable' | 'rate_limited';

export type RegisterResponse =
  | {
    ok: true;
    sessionId: string;
    groups: string[];
    /** Messages for the session dead-lettered since it last registered (the gap notice, PROTOCOL §4.1). */
    missed?: Missed;
  }
  | { ok: false; error: { code: RegisterErrorCode; message: string } };

export interface ClientToServerEvents {
  register: (request: RegisterRequest, ack: (response: RegisterResponse) => void) => void;
}

/** Every notification event carries one envelope; reliable session messages also an ack callback. */
export interface ServerToClientEvents {
  [event: string]: (envelope: Envelope, ack?: () => void) => void;
}

/** The event sent, with a `TokenExpired`, just before the server disconnects a socket whose token ran out. */
export const TOKEN_EXPIRED_EVENT = 'token_expired';

/** What socket.io keeps on each socket (`socket.data`): who the handshake proved it is. */
export interface SocketData {
  /** From the handshake when auth is enabled: what this socket may register. */
  identity: Identity | undefined;
}

export type PushServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type PushSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** Who a socket is, as proven by its handshake token. */
export interface Identity {
  sessionId: string;
  /** Groups it may join; undefined: the token has no `groups` claim, so none. */
  groups: string[];
}
