import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { errors, importPKCS8, importSPKI, jwtVerify, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import type { Authenticator } from './auth.js';
import type { Identity } from './protocol.js';

/**
 * The JWT handshake authenticator of PROTOCOL §3: a socket.io client connects with `auth: { token }`, a JWT
 * whose `sub` is its session id and whose optional `groups` claim lists the groups it may join.
 *
 * What is accepted:
 * - HS256 when the authenticator holds a shared secret (`AUTH_JWT_SECRET`); RS256 or ES256 (P-256) when it
 *   holds a public key (`AUTH_JWT_PUBLIC_KEY`), picked from the key's type. Exactly one algorithm is
 *   allowed per authenticator, so `alg: none` and HS/RS confusion (an HS256 token "signed" with the
 *   public key as the secret) are refused before any key is used.
 * - `exp` and `nbf` are checked with a small clock tolerance. A token without `exp` never expires: that is
 *   the token issuer's choice, and `mintToken` always sets one.
 * - `sub`: 1 to `maxIdLength` characters; `groups`: absent (no groups) or an array of at most `maxGroups`
 *   strings of 1 to `maxIdLength` characters. The limits default to those of the notification (PROTOCOL §2).
 */

/** Why a handshake was refused: for the server's logs and a metric. The client only sees `unauthorized`. */
export type UnauthorizedReason =
  | 'missing_token'
  | 'malformed'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'bad_claims'
  | 'wrong_algorithm';

export class UnauthorizedError extends Error {
  constructor(
    readonly reason: UnauthorizedReason,
    detail: string,
  ) {
    super(`unauthorized (${reason}): ${detail}`);
    this.name = 'UnauthorizedError';
  }
}

/** The identity a token proves, with the time it stops proving it. */
export interface TokenIdentity extends Identity {
  /** From `exp`, ms since epoch; undefined: the token has no `exp` and does not expire. */
  expiresAt?: number;
}

export type JwtAlgorithm = 'HS256' | 'RS256' | 'ES256';

export interface JwtAuthenticatorOptions {
  /** HS256 shared secret (`AUTH_JWT_SECRET`), at least 32 characters. */
  secret?: string;
  /**
   * RS256 (RSA, ≥ 2048 bits) or ES256 (EC P-256) public key (`AUTH_JWT_PUBLIC_KEY`), SPKI PEM
   * (`-----BEGIN PUBLIC KEY-----`). Literal `\n` sequences are read as line breaks, for environments
   * that cannot hold a multi-line value.
   */
  publicKeyPem?: string;
  /** Clock skew allowed on `exp` and `nbf`, in seconds. Default 5. */
  clockToleranceSec?: number;
  /** Longest `sub` and group name, in characters. Default 128 (`MAX_ID_LENGTH`). */
  maxIdLength?: number;
  /** Most entries of the `groups` claim. Default 100 (`MAX_GROUPS_PER_MESSAGE`). */
  maxGroups?: number;
}

interface ClaimLimits {
  maxIdLength: number;
  maxGroups: number;
}

const DEFAULT_LIMITS: ClaimLimits = { maxIdLength: 128, maxGroups: 100 };
const DEFAULT_CLOCK_TOLERANCE_SEC = 5;
const MIN_SECRET_LENGTH = 32;
const MIN_RSA_BITS = 2048;
/**
 * Longer tokens are refused before any decoding. Room for 100 groups of 128 characters, even escaped:
 * a legitimate token is a few KiB.
 */
const MAX_TOKEN_LENGTH = 64 * 1024;
const P256_NAMES = new Set(['prime256v1', 'P-256', 'secp256r1']);

export class JwtAuthenticator implements Authenticator {
  readonly enabled = true;

  private constructor(
    private readonly key: CryptoKey | Uint8Array,
    /** The only algorithm tokens may use. */
    readonly algorithm: JwtAlgorithm,
    private readonly clockToleranceSec: number,
    private readonly limits: ClaimLimits,
  ) {}

  /**
   * Builds the authenticator from exactly one of `secret` and `publicKeyPem`. Throws an Error naming the
   * setting (AUTH_JWT_SECRET / AUTH_JWT_PUBLIC_KEY) when the key cannot be used, so start-up stops.
   */
  static async create(options: JwtAuthenticatorOptions): Promise<JwtAuthenticator> {
    const { secret, publicKeyPem } = options;
    const clockToleranceSec = options.clockToleranceSec ?? DEFAULT_CLOCK_TOLERANCE_SEC;
    if (!Number.isFinite(clockToleranceSec) || clockToleranceSec < 0) {
      throw new Error(`JWT clock tolerance must be a number of seconds ≥ 0, got ${clockToleranceSec}`);
    }
    const limits: ClaimLimits = {
      maxIdLength: options.maxIdLength ?? DEFAULT_LIMITS.maxIdLength,
      maxGroups: options.maxGroups ?? DEFAULT_LIMITS.maxGroups,
    };
    if (secret !== undefined && publicKeyPem !== undefined) {
      throw new Error('AUTH_JWT_SECRET and AUTH_JWT_PUBLIC_KEY are both set: set only one of them');
    }
    if (secret !== undefined) {
      if (secret.length < MIN_SECRET_LENGTH) {
        throw new Error(
          `AUTH_JWT_SECRET: must be at least ${MIN_SECRET_LENGTH} characters (HS256 needs a 256-bit key)`,
        );
      }
      return new JwtAuthenticator(new TextEncoder().encode(secret), 'HS256', clockToleranceSec, limits);
    }
    if (publicKeyPem !== undefined) {
      const { key, algorithm } = await importPublicKey(publicKeyPem);
      return new JwtAuthenticator(key, algorithm, clockToleranceSec, limits);
    }
    throw new Error(
      'JWT authentication needs a key: set AUTH_JWT_SECRET (HS256) or AUTH_JWT_PUBLIC_KEY (RS256/ES256, PEM)',
    );
  }

  /**
   * Resolves the identity `auth.token` proves; rejects with an `UnauthorizedError` when it proves none.
   * Any other rejection is a fault of the server, not of the token.
   */
  async authenticate(auth: Record<string, unknown>): Promise<TokenIdentity> {
    const token = readToken(auth);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: [this.algorithm],
        clockTolerance: this.clockToleranceSec,
      }));
    } catch (err) {
      throw toUnauthorized(err);
    }
    const problem = claimsProblem(payload.sub, payload.groups, this.limits);
    if (problem !== undefined) throw new UnauthorizedError('bad_claims', problem);
    const identity: TokenIdentity = {
      sessionId: payload.sub as string,
      groups: unique((payload.groups as string[] | undefined) ?? []),
    };
    // jwtVerify has checked that a present `exp` is a number.
    if (typeof payload.exp === 'number') identity.expiresAt = payload.exp * 1000;
    return identity;
  }
}

export interface MintTokenOptions {
  /** HS256 shared secret. */
  secret?: string;
  /** RS256 / ES256 private key, PEM (PKCS#8, or PKCS#1 / SEC1). */
  privateKeyPem?: string;
  /** Default: HS256 with a secret, else RS256 or ES256 from the private key's type. */
  alg?: JwtAlgorithm;
  sessionId: string;
  groups?: string[];
  /** Lifetime in seconds. Default 3600. */
  expiresInSec?: number;
}

const DEFAULT_TOKEN_LIFETIME_SEC = 3600;

/**
 * Signs a handshake token for `sessionId` (and the groups it may join), as a business backend would
 * issue it to its browser. Throws when the claims would be refused by a `JwtAuthenticator` with the
 * default limits, or when the key does not fit the algorithm.
 */
export async function mintToken(options: MintTokenOptions): Promise<string> {
  const { secret, privateKeyPem, sessionId, groups } = options;
  const lifetime = options.expiresInSec ?? DEFAULT_TOKEN_LIFETIME_SEC;
  if (!Number.isFinite(lifetime) || lifetime <= 0) {
    throw new Error(`mintToken: expiresInSec must be a number of seconds > 0, got ${lifetime}`);
  }
  const problem = claimsProblem(sessionId, groups, DEFAULT_LIMITS);
  if (problem !== undefined) throw new Error(`mintToken: ${problem}`);
  if ((secret === undefined) === (privateKeyPem === undefined)) {
    throw new Error('mintToken: pass exactly one of secret and privateKeyPem');
  }

  let key: CryptoKey | Uint8Array;
  let alg: JwtAlgorithm;
  if (secret !== undefined) {
    alg = options.alg ?? 'HS256';
    if (alg !== 'HS256') throw new Error(`mintToken: ${alg} needs privateKeyPem, a secret signs HS256 only`);
    key = new TextEncoder().encode(secret);
  } else {
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(privateKeyPem as string);
    } catch (err) {
      throw new Error(`mintToken: privateKeyPem is not a PEM private key (${(err as Error).message})`);
    }
    alg = options.alg ?? algorithmFor(privateKey, 'mintToken: privateKeyPem');
    if (alg === 'HS256') throw new Error('mintToken: HS256 needs a secret, not a private key');
    const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    try {
      key = await importPKCS8(pkcs8, alg);
    } catch (err) {
      throw new Error(`mintToken: privateKeyPem cannot sign ${alg} (${(err as Error).message})`);
    }
  }

  const jwt = new SignJWT(groups === undefined ? {} : { groups })
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setSubject(sessionId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + lifetime);
  return jwt.sign(key);
}

async function importPublicKey(text: string): Promise<{ key: CryptoKey; algorithm: JwtAlgorithm }> {
  const pem = text.replace(/\\n/g, '\n').trim();
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new Error(
      'AUTH_JWT_PUBLIC_KEY: holds a private key; configure the public key (-----BEGIN PUBLIC KEY-----) ' +
        'and keep the private key with the token issuer only',
    );
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(
      `AUTH_JWT_PUBLIC_KEY: not a PEM public key (-----BEGIN PUBLIC KEY-----): ${(err as Error).message}`,
    );
  }
  const algorithm = algorithmFor(publicKey, 'AUTH_JWT_PUBLIC_KEY');
  try {
    return { key: await importSPKI(pem, algorithm), algorithm };
  } catch (err) {
    throw new Error(
      `AUTH_JWT_PUBLIC_KEY: cannot be used for ${algorithm}; it must be an SPKI PEM public key ` +
        `(-----BEGIN PUBLIC KEY-----): ${(err as Error).message}`,
    );
  }
}

/** RS256 for an RSA key of at least 2048 bits, ES256 for a P-256 EC key; anything else is refused. */
function algorithmFor(key: KeyObject, setting: string): 'RS256' | 'ES256' {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) {
      throw new Error(`${setting}: the RSA key has ${bits} bits; RS256 needs at least ${MIN_RSA_BITS}`);
    }
    return 'RS256';
  }
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? 'unknown';
    if (!P256_NAMES.has(curve)) {
      throw new Error(`${setting}: the EC key is on curve ${curve}; ES256 needs a P-256 (prime256v1) key`);
    }
    return 'ES256';
  }
  throw new Error(
    `${setting}: ${type ?? 'unknown'} keys are not supported; use an RSA key (RS256) or a P-256 EC key (ES256)`,
  );
}

function readToken(auth: Record<string, unknown>): string {
  const token: unknown = typeof auth === 'object' && auth !== null ? auth.token : undefined;
  if (token === undefined || token === null || token === '') {
    throw new UnauthorizedError('missing_token', 'the handshake has no auth.token');
  }
  if (typeof token !== 'string') throw new UnauthorizedError('malformed', `auth.token is a ${typeof token}`);
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new UnauthorizedError('malformed', `auth.token is ${token.length} characters; at most ${MAX_TOKEN_LENGTH}`);
  }
  return token;
}

/** Maps what jose refuses to a reason; errors that are not about the token are passed on unchanged. */
function toUnauthorized(err: unknown): unknown {
  if (!(err instanceof errors.JOSEError)) return err;
  if (err instanceof errors.JOSEAlgNotAllowed) return new UnauthorizedError('wrong_algorithm', err.message);
  if (err instanceof errors.JWSSignatureVerificationFailed) return new UnauthorizedError('bad_signature', err.message);
  if (err instanceof errors.JWTExpired) return new UnauthorizedError('expired', err.message);
  if (err instanceof errors.JWTClaimValidationFailed) {
    const notYet = err.claim === 'nbf' && err.reason === 'check_failed';
    return new UnauthorizedError(notYet ? 'not_yet_valid' : 'bad_claims', err.message);
  }
  return new UnauthorizedError('malformed', err.message);
}

/** What is wrong with `sub` and `groups`, or undefined when they make an identity. */
function claimsProblem(sub: unknown, groups: unknown, limits: ClaimLimits): string | undefined {
  const isName = (value: unknown): boolean =>
    typeof value === 'string' && value.length > 0 && value.length <= limits.maxIdLength;
  if (!isName(sub)) return `sub must be a string of 1 to ${limits.maxIdLength} characters`;
  if (groups === undefined) return undefined;
  if (!Array.isArray(groups) || groups.length > limits.maxGroups || !groups.every(isName)) {
    return `groups must be an array of at most ${limits.maxGroups} strings of 1 to ${limits.maxIdLength} characters`;
  }
  return undefined;
}

function unique(values: string[]): string[] {
  return values.length > 1 ? [...new Set(values)] : values;
}
