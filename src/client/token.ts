/**
 * The `groups` claim of a handshake JWT, read without verifying it (the server verifies; the client only
 * needs to know which groups to ask for). Undefined when the token is not a JWT or has no such claim.
 */
export function tokenGroups(token: string | undefined): string[] | undefined {
  const payload = token?.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    const groups = (claims as { groups?: unknown } | null)?.groups;
    return Array.isArray(groups) && groups.every((group) => typeof group === 'string') ? groups : undefined;
  } catch {
    return undefined;
  }
}
