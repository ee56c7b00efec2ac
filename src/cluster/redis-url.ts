/**
 * `REDIS_URL`: one Redis server (`redis://`, `rediss://`, as ioredis reads them) or a Redis Cluster,
 * `redis+cluster://[user[:password]@]host:port[,host:port…]` (`rediss+cluster://` for TLS). The cluster
 * form lists seed nodes: any reachable one tells the client the others. User and password are
 * percent-encoded like in any URL; a cluster has no database number, so the URL has no path.
 */
export type RedisTarget = SingleRedis | RedisClusterSeeds;

export interface SingleRedis {
  cluster: false;
  url: string;
}

export interface RedisClusterSeeds {
  cluster: true;
  nodes: Array<{ host: string; port: number }>;
  username: string | undefined;
  password: string | undefined;
  tls: boolean;
}

const SINGLE_PROTOCOLS = ['redis:', 'rediss:'];
const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(.*)$/i;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$/;
const DEFAULT_PORT = 6379;

export const REDIS_URL_FORMS = 'redis://… or rediss://… for one Redis, or redis+cluster://host:port,host:port… ' +
  '(rediss+cluster:// for TLS) for a Redis Cluster';

/** Reads a `REDIS_URL`; throws a RangeError that says what is wrong, never repeating a password. */
export function parseRedisUrl(text: string): RedisTarget {
  const cluster = CLUSTER_URL.exec(text);
  if (!cluster) {
    let protocol: string;
    try {
      protocol = new URL(text).protocol;
    } catch {
      throw new RangeError(`not a URL; must be ${REDIS_URL_FORMS}`);
    }
    if (!SINGLE_PROTOCOLS.includes(protocol)) throw new RangeError(`must be ${REDIS_URL_FORMS}`);
    return { cluster: false, url: text };
  }
  const scheme = cluster[1]!;
  const rest = cluster[2]!;
  const end = rest.search(/[/?#]/);
  if (end !== -1 && rest.slice(end) !== '/') {
    throw new RangeError('a redis+cluster:// URL has no path, query or fragment (a Redis Cluster has no database number)');
  }
  const authority = end === -1 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  const credentials = at === -1 ? undefined : readCredentials(authority.slice(0, at));
  const seeds = authority.slice(at + 1);
  if (seeds === '') throw new RangeError('a redis+cluster:// URL lists at least one node, e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000');
  return {
    cluster: true,
    nodes: seeds.split(',').map(readNode),
    username: credentials?.username,
    password: credentials?.password,
    tls: scheme.toLowerCase() === 'rediss',
  };
}

/** The seed nodes as `host:port, host:port` (no credentials), for messages. */
export function seedList(target: RedisClusterSeeds): string {
  return target.nodes.map(({ host, port }) => `${host}:${port}`).join(', ');
}

function readCredentials(userinfo: string): { username: string | undefined; password: string | undefined } {
  const colon = userinfo.indexOf(':');
  const user = colon === -1 ? userinfo : userinfo.slice(0, colon);
  const password = colon === -1 ? undefined : userinfo.slice(colon + 1);
  try {
    return { username: user === '' ? undefined : decodeURIComponent(user), password: password === undefined || password === '' ? undefined : decodeURIComponent(password) };
  } catch {
    throw new RangeError('the user or password of the redis+cluster:// URL is not validly percent-encoded');
  }
}

function readNode(text: string, index: number): { host: string; port: number } {
  const node = text.trim();
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(node);
  const host = match?.[1] ?? '';
  const portText = match?.[2];
  const port = portText === undefined ? DEFAULT_PORT : Number(portText);
  if (!match || !HOST.test(host) || portText === '' || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new RangeError(`node ${index + 1} of the redis+cluster:// URL, ${JSON.stringify(node)}, is not host:port (a port from 1 to 65535)`);
  }
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port };
}
