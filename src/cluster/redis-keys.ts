/**
 * Escapes an id (session, message, node) for use in Redis keys, members and channels, so that any two
 * different ids stay different in Redis. Redis sees UTF-8, in which unpaired UTF-16 surrogates would all
 * turn into U+FFFD; so `[A-Za-z0-9_.-]` stay as they are (typical ids remain readable in `redis-cli`) and
 * every other UTF-16 code unit, `%` included, becomes `%` and four hex digits. The result cannot end a
 * hash tag (no `}`) and holds no glob syntax for SCAN patterns.
 */
export function escapeKeyPart(id: string): string {
  return id.replace(/[^A-Za-z0-9_.-]/g, (unit) => `%${unit.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
