/** The URL without its password, for logs and error messages; text that is not a URL is not shown at all. */
export function redact(url: string | URL): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}
