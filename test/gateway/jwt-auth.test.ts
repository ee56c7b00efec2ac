import { generateKeyPairSync } from 'node:crypto';
import { base64url, CompactSign, decodeJwt, importPKCS8, SignJWT, type JWTPayload } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  JwtAuthenticator,
  mintToken,
  UnauthorizedError,
  type UnauthorizedReason,
} from '../../src/gateway/jwt-auth.js';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const OTHER_SECRET = 'another-secret-that-is-long-enough-for-hs256';

function pemPair(type: 'rsa' | 'ec' | 'ed25519', options: { modulusLength?: number; namedCurve?: string } = {}) {
  const pair =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: options.modulusLength ?? 2048 })
      : type === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: options.namedCurve ?? 'prime256v1' })
        : generateKeyPairSync('ed25519');
  return {
    publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    privateKeyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

const rsa = pemPair('rsa');
const ec = pemPair('ec');
const now = (): number => Math.floor(Date.now() / 1000);

/** Signs any claims set, including ones `mintToken` refuses to produce. */
async function signHs256(claims: JWTPayload, secret = SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
}

async function refusal(auth: JwtAuthenticator, handshake: Record<string, unknown>): Promise<UnauthorizedReason> {
  const err: unknown = await auth.authenticate(handshake).then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(err).toBeInstanceOf(UnauthorizedError);
  return (err as UnauthorizedError).reason;
}

async function createError(options: Parameters<typeof JwtAuthenticator.create>[0]): Promise<string> {
  const err: unknown = await JwtAuthenticator.create(options).then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(err).toBeInstanceOf(Error);
  return (err as Error).message;
}

describe('JWT handshake authentication', () => {
  describe('accepts a valid token', () => {
    it('HS256: the identity is the sub, the groups claim and the expiry', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const token = await mintToken({ secret: SECRET, sessionId: 'user-1', groups: ['sales', 'ops'], expiresInSec: 600 });

      const identity = await auth.authenticate({ token });

      expect(auth.enabled).toBe(true);
      expect(identity).toEqual({ sessionId: 'user-1', groups: ['sales', 'ops'], expiresAt: decodeJwt(token).exp! * 1000 });
      expect(identity.expiresAt).toBeGreaterThan(Date.now() + 590_000);
      expect(identity.expiresAt).toBeLessThanOrEqual(Date.now() + 600_000);
    });

    it('without a groups claim, the identity has no groups', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const token = await mintToken({ secret: SECRET, sessionId: 'user-1' });
      expect(decodeJwt(token)).not.toHaveProperty('groups');

      expect((await auth.authenticate({ token })).groups).toEqual([]);
    });

    it('without exp, the token never expires and the identity has no expiresAt', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const identity = await auth.authenticate({ token: await signHs256({ sub: 'user-1' }) });

      expect(identity).toEqual({ sessionId: 'user-1', groups: [] });
    });

    it('repeated groups are listed once', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const token = await signHs256({ sub: 'user-1', groups: ['a', 'b', 'a'] });

      expect((await auth.authenticate({ token })).groups).toEqual(['a', 'b']);
    });

    it('RS256 with an RSA public key', async () => {
      const auth = await JwtAuthenticator.create({ publicKeyPem: rsa.publicKeyPem });
      const token = await mintToken({ privateKeyPem: rsa.privateKeyPem, sessionId: 'user-2', groups: ['g'] });

      expect(auth.algorithm).toBe('RS256');
      expect(await auth.authenticate({ token })).toMatchObject({ sessionId: 'user-2', groups: ['g'] });
    });

    it('ES256 with a P-256 public key', async () => {
      const auth = await JwtAuthenticator.create({ publicKeyPem: ec.publicKeyPem });
      const token = await mintToken({ privateKeyPem: ec.privateKeyPem, sessionId: 'user-3' });

      expect(auth.algorithm).toBe('ES256');
      expect(await auth.authenticate({ token })).toMatchObject({ sessionId: 'user-3', groups: [] });
    });

    it('a public key whose line breaks are written as \\n (one-line environment variable)', async () => {
      const oneLine = rsa.publicKeyPem.trim().replace(/\n/g, '\\n');
      const auth = await JwtAuthenticator.create({ publicKeyPem: oneLine });
      const token = await mintToken({ privateKeyPem: rsa.privateKeyPem, sessionId: 'user-2' });

      expect((await auth.authenticate({ token })).sessionId).toBe('user-2');
    });

    it('a token that expired within the clock tolerance', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET, clockToleranceSec: 30 });
      const token = await signHs256({ sub: 'user-1', exp: now() - 10 });

      expect((await auth.authenticate({ token })).sessionId).toBe('user-1');
    });

    it('claims at the limits: 128 characters, 100 groups', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const groups = Array.from({ length: 100 }, (_, i) => `${i}`.padEnd(128, 'g'));
      const token = await signHs256({ sub: 'u'.repeat(128), groups });

      expect((await auth.authenticate({ token })).groups).toHaveLength(100);
    });
  });

  describe('refuses', () => {
    it('an expired token (expired)', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const token = await signHs256({ sub: 'user-1', exp: now() - 60 });

      expect(await refusal(auth, { token })).toBe('expired');
    });

    it('a token whose nbf is in the future (not_yet_valid)', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const token = await signHs256({ sub: 'user-1', nbf: now() + 60, exp: now() + 600 });

      expect(await refusal(auth, { token })).toBe('not_yet_valid');
    });

    it('a token whose payload was changed after signing (bad_signature)', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const [header, , signature] = (await mintToken({ secret: SECRET, sessionId: 'user-1', groups: ['staff'] })).split('.');
      const forged = base64url.encode(JSON.stringify({ sub: 'user-1', groups: ['staff', 'admin'], exp: now() + 600 }));

      expect(await refusal(auth, { token: `${header}.${forged}.${signature}` })).toBe('bad_signature');
    });

    it('a token signed with another secret (bad_signature)', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const token = await mintToken({ secret: OTHER_SECRET, sessionId: 'user-1' });

      expect(await refusal(auth, { token })).toBe('bad_signature');
    });

    it('a token signed with another RSA key (bad_signature)', async () => {
      const auth = await JwtAuthenticator.create({ publicKeyPem: rsa.publicKeyPem });
      const token = await mintToken({ privateKeyPem: pemPair('rsa').privateKeyPem, sessionId: 'user-1' });

      expect(await refusal(auth, { token })).toBe('bad_signature');
    });

    it('an unsigned alg "none" token, whatever the key (wrong_algorithm)', async () => {
      const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
      const payload = base64url.encode(JSON.stringify({ sub: 'user-1', groups: ['admin'], exp: now() + 600 }));
      const token = `${header}.${payload}.`;

      for (const options of [{ secret: SECRET }, { publicKeyPem: rsa.publicKeyPem }, { publicKeyPem: ec.publicKeyPem }]) {
        expect(await refusal(await JwtAuthenticator.create(options), { token })).toBe('wrong_algorithm');
      }
    });

    it('an HS256 token signed with the RSA public key as the secret (wrong_algorithm)', async () => {
      const auth = await JwtAuthenticator.create({ publicKeyPem: rsa.publicKeyPem });
      const token = await mintToken({ secret: rsa.publicKeyPem, alg: 'HS256', sessionId: 'user-1' });

      expect(await refusal(auth, { token })).toBe('wrong_algorithm');
    });

    it('a token of another algorithm than the configured key (wrong_algorithm)', async () => {
      const rsAuth = await JwtAuthenticator.create({ publicKeyPem: rsa.publicKeyPem });
      const hsAuth = await JwtAuthenticator.create({ secret: SECRET });
      const esToken = await mintToken({ privateKeyPem: ec.privateKeyPem, sessionId: 'user-1' });
      const rsToken = await mintToken({ privateKeyPem: rsa.privateKeyPem, sessionId: 'user-1' });

      expect(await refusal(rsAuth, { token: esToken })).toBe('wrong_algorithm');
      expect(await refusal(hsAuth, { token: rsToken })).toBe('wrong_algorithm');
    });

    it('a handshake without a token (missing_token)', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });

      expect(await refusal(auth, {})).toBe('missing_token');
      expect(await refusal(auth, { token: '' })).toBe('missing_token');
      expect(await refusal(auth, { token: null })).toBe('missing_token');
    });

    it('a token that is not a string (malformed)', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });

      expect(await refusal(auth, { token: 42 })).toBe('malformed');
      expect(await refusal(auth, { token: { sub: 'user-1' } })).toBe('malformed');
    });

    it('a string that is not a JWT (malformed)', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });

      expect(await refusal(auth, { token: 'not-a-jwt' })).toBe('malformed');
      expect(await refusal(auth, { token: 'a.b.c' })).toBe('malformed');
      expect(await refusal(auth, { token: 'x'.repeat(100_000) })).toBe('malformed');
    });

    it('a signed token whose payload is not a JSON claims set (malformed)', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const token = await new CompactSign(new TextEncoder().encode('user-1'))
        .setProtectedHeader({ alg: 'HS256' })
        .sign(new TextEncoder().encode(SECRET));

      expect(await refusal(auth, { token })).toBe('malformed');
    });

    it.each([
      ['sub is missing', { groups: ['g'] }],
      ['sub is a number', { sub: 42 }],
      ['sub is empty', { sub: '' }],
      ['sub is over 128 characters', { sub: 'u'.repeat(129) }],
      ['groups is not an array', { sub: 'user-1', groups: 'sales' }],
      ['groups is null', { sub: 'user-1', groups: null }],
      ['a group is not a string', { sub: 'user-1', groups: ['sales', 7] }],
      ['a group is empty', { sub: 'user-1', groups: [''] }],
      ['a group is over 128 characters', { sub: 'user-1', groups: ['g'.repeat(129)] }],
      ['groups has over 100 entries', { sub: 'user-1', groups: Array.from({ length: 101 }, (_, i) => `g${i}`) }],
      ['exp is not a number', { sub: 'user-1', exp: 'tomorrow' }],
    ])('a token whose %s (bad_claims)', async (_, claims) => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });

      expect(await refusal(auth, { token: await signHs256(claims as JWTPayload) })).toBe('bad_claims');
    });

    it('claims over configured limits (bad_claims)', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET, maxIdLength: 8, maxGroups: 1 });

      expect(await refusal(auth, { token: await signHs256({ sub: 'user-12345' }) })).toBe('bad_claims');
      expect(await refusal(auth, { token: await signHs256({ sub: 'u', groups: ['a', 'b'] }) })).toBe('bad_claims');
    });

    it('with an error that names the reason and never the key', async () => {
      const auth = await JwtAuthenticator.create({ secret: SECRET });
      const err = await auth.authenticate({ token: await mintToken({ secret: OTHER_SECRET, sessionId: 'u' }) }).catch((e: unknown) => e);

      expect(err).toBeInstanceOf(UnauthorizedError);
      expect((err as Error).message).toMatch(/^unauthorized \(bad_signature\)/);
      expect((err as Error).message).not.toContain(SECRET);
    });
  });

  describe('start-up refuses a key it cannot use', () => {
    it('neither a secret nor a public key', async () => {
      expect(await createError({})).toMatch(/AUTH_JWT_SECRET.*AUTH_JWT_PUBLIC_KEY/);
    });

    it('both a secret and a public key', async () => {
      expect(await createError({ secret: SECRET, publicKeyPem: rsa.publicKeyPem })).toMatch(/set only one/);
    });

    it('a secret shorter than 32 characters, naming AUTH_JWT_SECRET', async () => {
      expect(await createError({ secret: 'short' })).toMatch(/^AUTH_JWT_SECRET: must be at least 32 characters/);
    });

    it('a public key that is not PEM, naming AUTH_JWT_PUBLIC_KEY', async () => {
      expect(await createError({ publicKeyPem: 'not a key' })).toMatch(/^AUTH_JWT_PUBLIC_KEY: not a PEM public key/);
      const garbled = '-----BEGIN PUBLIC KEY-----\nAAAAgarbage\n-----END PUBLIC KEY-----\n';
      expect(await createError({ publicKeyPem: garbled })).toMatch(/^AUTH_JWT_PUBLIC_KEY: not a PEM public key/);
    });

    it('a private key given as the public key', async () => {
      expect(await createError({ publicKeyPem: rsa.privateKeyPem })).toMatch(/^AUTH_JWT_PUBLIC_KEY: holds a private key/);
    });

    it('an Ed25519 public key', async () => {
      expect(await createError({ publicKeyPem: pemPair('ed25519').publicKeyPem })).toMatch(
        /^AUTH_JWT_PUBLIC_KEY: ed25519 keys are not supported; use an RSA key \(RS256\) or a P-256 EC key \(ES256\)/,
      );
    });

    it('an EC key on another curve than P-256', async () => {
      expect(await createError({ publicKeyPem: pemPair('ec', { namedCurve: 'secp384r1' }).publicKeyPem })).toMatch(
        /^AUTH_JWT_PUBLIC_KEY: the EC key is on curve secp384r1; ES256 needs a P-256/,
      );
    });

    it('an RSA key under 2048 bits', async () => {
      expect(await createError({ publicKeyPem: pemPair('rsa', { modulusLength: 1024 }).publicKeyPem })).toMatch(
        /^AUTH_JWT_PUBLIC_KEY: the RSA key has 1024 bits; RS256 needs at least 2048/,
      );
    });

    it('a negative clock tolerance', async () => {
      expect(await createError({ secret: SECRET, clockToleranceSec: -1 })).toMatch(/clock tolerance/);
    });
  });

  describe('mintToken', () => {
    it('sets sub, groups, iat and a one-hour exp by default', async () => {
      const claims = decodeJwt(await mintToken({ secret: SECRET, sessionId: 'user-1', groups: ['g'] }));

      expect(claims).toMatchObject({ sub: 'user-1', groups: ['g'] });
      expect(claims.exp! - claims.iat!).toBe(3600);
    });

    it('signs with a PKCS#1 RSA private key too', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
      const auth = await JwtAuthenticator.create({ publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string });

      expect((await auth.authenticate({ token: await mintToken({ privateKeyPem: pkcs1, sessionId: 'u' }) })).sessionId).toBe('u');
    });

    it('refuses claims an authenticator would refuse, and a key that does not fit', async () => {
      await expect(mintToken({ secret: SECRET, sessionId: '' })).rejects.toThrow(/sub must be a string/);
      await expect(mintToken({ secret: SECRET, sessionId: 'u', groups: [''] })).rejects.toThrow(/groups must be/);
      await expect(mintToken({ sessionId: 'u' })).rejects.toThrow(/exactly one of secret and privateKeyPem/);
      await expect(mintToken({ secret: SECRET, alg: 'RS256', sessionId: 'u' })).rejects.toThrow(/RS256 needs privateKeyPem/);
      await expect(mintToken({ privateKeyPem: ec.privateKeyPem, alg: 'RS256', sessionId: 'u' })).rejects.toThrow(
        /cannot sign RS256/,
      );
      await expect(mintToken({ secret: SECRET, sessionId: 'u', expiresInSec: 0 })).rejects.toThrow(/expiresInSec/);
    });

    it('tokens signed by hand with jose verify the same way', async () => {
      const auth = await JwtAuthenticator.create({ publicKeyPem: ec.publicKeyPem });
      const key = await importPKCS8(ec.privateKeyPem, 'ES256');
      const token = await new SignJWT({ groups: ['x'] }).setProtectedHeader({ alg: 'ES256' }).setSubject('s').sign(key);

      expect(await auth.authenticate({ token })).toEqual({ sessionId: 's', groups: ['x'] });
    });
  });
});
