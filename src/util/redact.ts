/** The URL without its password, for logs and error messages; text that is not a URL is not shown at all. */
export function redact(url: string | URL): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return redactMultiHost(String(url)) ?? '(unparsable URL)';
  }
}

/** A URL with several hosts (`redis+cluster://u:p@h1:1,h2:2`), which the URL parser refuses. */
function redactMultiHost(text: string): string | undefined {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(text);
  if (!scheme) return undefined;
  const rest = text.slice(scheme[0].length);
  const end = rest.search(/[/?#]/);
  const authority = end === -1 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  if (at === -1) return text;
  const userinfo = authority.slice(0, at);
  const colon = userinfo.indexOf(':');
  if (colon === -1 || colon === userinfo.length - 1) return text;
  return `${scheme[0]}${userinfo.slice(0, colon)}:***${rest.slice(at)}`;
}
