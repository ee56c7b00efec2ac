import type { Identity, RegisterErrorCode, RegisterRequest, RegisterResponse } from './protocol.js';

/** A `register` request that may be carried out: the session and the groups, without duplicates. */
export interface Registration {
  sessionId: string;
  groups: string[];
}

type Refusal = RegisterResponse & { ok: false };

/**
 * Reads a `register` payload (PROTOCOL §3), with the original message center's aliases; a socket
 * authenticated by a token registers as its token's session when it names none.
 */
export function readRegistration(
  request: unknown,
  limits: { maxIdLength: number; maxGroups: number },
  defaultSession: string | undefined,
): Registration | Refusal {
  if (request === undefined || request === null) request = {};
  if (typeof request !== 'object' || Array.isArray(request)) {
    return refuse('invalid_request', 'register takes an object { sessionId, groups }');
  }
  const { sessionId, socketId, groups, groupFlag } = request as RegisterRequest;
  const { maxIdLength, maxGroups } = limits;
  const session = sessionId ?? socketId ?? defaultSession;
  if (typeof session !== 'string' || session.length === 0 || session.length > maxIdLength) {
    return refuse('invalid_request', `sessionId must be a string of 1 to ${maxIdLength} characters`);
  }
  const rawGroups = groups ?? groupFlag ?? [];
  const list = typeof rawGroups === 'string' ? [rawGroups] : rawGroups;
  if (
    !Array.isArray(list) ||
    list.length > maxGroups ||
    !list.every((group) => typeof group === 'string' && group.length > 0 && group.length <= maxIdLength)
  ) {
    return refuse(
      'invalid_request',
      `groups must be a string or an array of at most ${maxGroups} strings of 1 to ${maxIdLength} characters`,
    );
  }
  return { sessionId: session, groups: [...new Set(list)] };
}

/** With auth on, a socket registers only its token's session and the groups its token allows. */
export function authorize(registration: Registration, identity: Identity | undefined): Refusal | undefined {
  if (!identity) return undefined;
  if (registration.sessionId !== identity.sessionId) return refuse('forbidden', 'sessionId must be the session of your token');
  const outside = registration.groups.filter((group) => !identity.groups.includes(group));
  if (outside.length > 0) return refuse('forbidden', `your token does not allow groups: ${outside.join(', ')}`);
  return undefined;
}

export function refuse(code: RegisterErrorCode, message: string): Refusal {
  return { ok: false, error: { code, message } };
}
