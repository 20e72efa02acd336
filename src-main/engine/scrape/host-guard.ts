/**
 * Which hosts and addresses a scrape may fetch from (the scraper's SSRF guard).
 *
 * - Pages come only from the listing site's own host:port (the base URL).
 * - Images come from the base host:port, from the `allowImageHosts` entries, and by default from
 *   the base host's registrable domain and its subdomains on the default port (`www.example.com`
 *   allows `example.com` and `*.example.com`, e.g. an `images.example.com` CDN).
 * - Whatever the host, a connection is refused when the address it resolves to is loopback,
 *   link-local, private, unspecified, multicast or reserved, unless the URL names exactly the base
 *   host:port and the base itself is such an address (a local site, the demo site, the tests), or
 *   an `allowImageHosts` entry names that exact IP address and port.
 *
 * The address check runs inside the connection ({@link createGuardedAgent}: a custom
 * `connect.lookup` that validates every resolved address, and a check of IP-literal hosts before
 * `net.connect`), so the address checked is the address connected to: a name that changes what it
 * resolves to between checks (DNS rebinding) cannot slip through. Redirect hops are checked like
 * the first URL (see fetch-policy.ts).
 */
import dns from 'node:dns';
import net from 'node:net';
import { Agent, buildConnector } from 'undici';

export type AddressClass = 'public' | 'loopback' | 'link-local' | 'private' | 'unspecified' | 'multicast' | 'reserved';

const V4: Array<[string, number, AddressClass]> = [
  ['0.0.0.0', 8, 'unspecified'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['10.0.0.0', 8, 'private'],
  ['172.16.0.0', 12, 'private'],
  ['192.168.0.0', 16, 'private'],
  ['100.64.0.0', 10, 'private'], // carrier-grade NAT
  ['192.0.0.0', 24, 'reserved'],
  ['198.18.0.0', 15, 'reserved'], // benchmarking
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'], // incl. 255.255.255.255
];
const V6: Array<[string, number, AddressClass]> = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['fe80::', 10, 'link-local'],
  ['fc00::', 7, 'private'],
  ['fec0::', 10, 'private'], // deprecated site-local
  ['ff00::', 8, 'multicast'],
  ['::', 96, 'reserved'], // deprecated IPv4-compatible
  ['100::', 64, 'reserved'], // discard-only
  ['2001:db8::', 32, 'reserved'], // documentation
];

const lists = new Map<AddressClass, net.BlockList>();
function listFor(c: AddressClass): net.BlockList {
  let l = lists.get(c);
  if (!l) {
    l = new net.BlockList();
    lists.set(c, l);
  }
  return l;
}
for (const [a, p, c] of V4) listFor(c).addSubnet(a, p, 'ipv4');
for (const [a, p, c] of V6) listFor(c).addSubnet(a, p, 'ipv6');
// Order matters where ranges nest (::1 and ::/128 inside ::/96).
const ORDER: AddressClass[] = ['unspecified', 'loopback', 'link-local', 'private', 'multicast', 'reserved'];

/** IPv4 embedded in an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) IPv6 address. */
function embeddedV4(v6: string): string | null {
  const mapped = new net.BlockList();
  mapped.addSubnet('::ffff:0:0', 96, 'ipv6');
  mapped.addSubnet('64:ff9b::', 96, 'ipv6');
  if (!mapped.check(v6, 'ipv6')) return null;
  const bytes = ipv6Bytes(v6);
  return bytes ? `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}` : null;
}

function ipv6Bytes(addr: string): number[] | null {
  let a = addr;
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (dotted) {
    const [b0, b1, b2, b3] = dotted.slice(2).map(Number) as [number, number, number, number];
    a = `${dotted[1]}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, rest] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - r.length)).fill('0'), ...r];
  if (groups.length !== 8) return null;
  return groups.map((g) => parseInt(g, 16)).flatMap((w) => [w >> 8, w & 0xff]);
}

/** The class of an IP address (v4 or v6; anything else is 'reserved'). */
export function classifyAddress(address: string): AddressClass {
  const a = stripBrackets(address);
  const family = net.isIP(a);
  if (family === 0) return 'reserved';
  if (family === 6) {
    const v4 = embeddedV4(a);
    if (v4 !== null) return classifyAddress(v4);
  }
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const c of ORDER) if (lists.get(c)?.check(a, type)) return c;
  return 'public';
}

/** IPv6 literal without brackets or zone id (`[fe80::1%eth0]` -> `fe80::1`). */
function stripBrackets(h: string): string {
  const inner = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
  const zone = inner.indexOf('%');
  return zone >= 0 && inner.includes(':') ? inner.slice(0, zone) : inner;
}

function defaultPort(protocol: string): number {
  return protocol === 'https:' ? 443 : 80;
}

/** "host:port" with the default port filled in, host lower-cased, IPv6 without brackets. */
function hostPort(u: URL): { host: string; port: number } {
  return { host: stripBrackets(u.hostname.toLowerCase()), port: u.port ? Number(u.port) : defaultPort(u.protocol) };
}

/** One `--allow-image-host` entry: `host`, `host:port`, `*.domain`, `[v6]:port`. */
interface HostEntry {
  /** Exact host, or the domain of a `*.` wildcard (subdomains only). */
  host: string;
  wildcard: boolean;
  /** null = the scheme's default port. */
  port: number | null;
  text: string;
}

/**
 * Parse an allowed-image-host entry; throws a RangeError with a readable message for a bad one.
 * No port means the scheme's default port (80 for http, 443 for https).
 */
export function parseHostEntry(text: string): HostEntry {
  const t = text.trim().toLowerCase();
  const bad = (why: string): RangeError => new RangeError(`bad image host ${JSON.stringify(text)}: ${why} (use a host name, host:port, *.domain or [v6]:port)`);
  if (t === '') throw bad('empty');
  if (/[/\s@?#]/.test(t)) throw bad('give a host, not a URL');
  const wildcard = t.startsWith('*.');
  const rest = wildcard ? t.slice(2) : t;
  let u: URL;
  try {
    u = new URL(`http://${rest}`);
  } catch {
    throw bad('not a host name');
  }
  const host = stripBrackets(u.hostname);
  if (host === '' || host.includes('*')) throw bad('not a host name');
  if (wildcard && net.isIP(host) !== 0) throw bad('a wildcard needs a domain, not an IP address');
  return { host, wildcard, port: u.port ? Number(u.port) : null, text: t };
}

function entryMatches(e: HostEntry, host: string, port: number, protocol: string): boolean {
  if ((e.port ?? defaultPort(protocol)) !== port) return false;
  return e.wildcard ? host.endsWith(`.${e.host}`) : host === e.host;
}

const TWO_LEVEL_SUFFIX = new Set(['co', 'com', 'net', 'org', 'gov', 'ac', 'edu', 'ne', 'or']);

/**
 * The registrable domain of a host name, by a small heuristic (no public-suffix list): the last
 * two labels, or three under a two-letter country code with a generic second level (`co.uk`).
 * Null for IP addresses and single-label names such as `localhost`.
 */
export function registrableDomain(host: string): string | null {
  if (net.isIP(stripBrackets(host)) !== 0) return null;
  const labels = host.toLowerCase().replace(/\.$/, '').split('.');
  if (labels.length < 2) return null;
  const tld = labels[labels.length - 1]!;
  const sld = labels[labels.length - 2]!;
  const n = tld.length === 2 && TWO_LEVEL_SUFFIX.has(sld) ? 3 : 2;
  return labels.length >= n ? labels.slice(-n).join('.') : null;
}

export type FetchKind = 'page' | 'image';

export class RefusedError extends Error {
  override name = 'RefusedError';
  readonly code = 'ERR_CARSTUDIO_REFUSED';
  /** `refused: ...`, as recorded. */
  constructor(readonly reason: string) {
    super(reason);
  }
}

export interface HostGuardOptions {
  baseUrl: string;
  allowImageHosts?: readonly string[];
  /** Resolve the base host to find out whether it is itself a local/private site (default dns.lookup). */
  lookup?: typeof dns.lookup;
}

export class HostGuard {
  private constructor(
    private readonly base: { host: string; port: number; protocol: string },
    /** The base resolved to (or is) a non-public address: that exact host:port may use one. */
    private readonly baseIsLocal: boolean,
    private readonly entries: HostEntry[],
    private readonly lookupFn: typeof dns.lookup,
  ) {}

  /** Build the guard for a scrape of `baseUrl`; resolves the base host once. */
  static async create(opts: HostGuardOptions): Promise<HostGuard> {
    const u = new URL(opts.baseUrl);
    const { host, port } = hostPort(u);
    const entries = (opts.allowImageHosts ?? []).map(parseHostEntry);
    const domain = registrableDomain(host);
    if (domain !== null) entries.push({ host: domain, wildcard: false, port: null, text: domain }, { host: domain, wildcard: true, port: null, text: `*.${domain}` });
    const lookupFn = opts.lookup ?? dns.lookup;
    let local = net.isIP(host) !== 0 ? classifyAddress(host) !== 'public' : false;
    if (net.isIP(host) === 0) {
      const addrs = await new Promise<dns.LookupAddress[]>((resolve) => lookupFn(host, { all: true }, (err, a) => resolve(err ? [] : a)));
      local = addrs.length > 0 && addrs.every((a) => classifyAddress(a.address) !== 'public');
    }
    return new HostGuard({ host, port, protocol: u.protocol }, local, entries, lookupFn);
  }

  /** The image-host entries in force (the configured ones and the default domain pattern). */
  get imageHosts(): string[] {
    return this.entries.map((e) => e.text);
  }

  private isBase(host: string, port: number): boolean {
    return host === this.base.host && port === this.base.port;
  }

  /** An allow entry naming exactly this IP address and port (the only way to reach a local address besides the base). */
  private isExplicitLocal(host: string, port: number): boolean {
    return net.isIP(host) !== 0 && this.entries.some((e) => !e.wildcard && e.host === host && e.port === port);
  }

  /** Null when `url` may be fetched as a `kind`, else the refusal reason (`refused: ...`). Checks the URL only; addresses are checked on connect. */
  checkUrl(url: string | URL, kind: FetchKind): string | null {
    let u: URL;
    try {
      u = typeof url === 'string' ? new URL(url) : url;
    } catch {
      return `refused: not a URL: ${String(url)}`;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return `refused: ${u.protocol} URLs are not fetched`;
    const { host, port } = hostPort(u);
    const shown = u.host;
    if (this.isBase(host, port)) return this.baseIsLocal ? null : this.addressRefusal(host, port, host);
    if (kind === 'page') return `refused: ${shown} is not the listing site's host`;
    if (!this.entries.some((e) => entryMatches(e, host, port, u.protocol))) return `refused: ${shown} is not an allowed image host`;
    return net.isIP(host) !== 0 ? this.addressRefusal(host, port, host) : null;
  }

  /** Null when a connection to `address` for `host:port` is allowed, else the refusal reason. */
  checkAddress(host: string, port: number, address: string): string | null {
    const h = stripBrackets(host.toLowerCase());
    return this.addressRefusal(h, port, address);
  }

  private addressRefusal(host: string, port: number, address: string): string | null {
    if (net.isIP(address) === 0) return null; // a name: its addresses are checked on connect
    const c = classifyAddress(address);
    if (c === 'public') return null;
    if (this.isBase(host, port) && this.baseIsLocal) return null;
    if (this.isExplicitLocal(host, port) && host === stripBrackets(address)) return null;
    const article = /^[aeiou]/.test(c) ? 'an' : 'a';
    return host === stripBrackets(address) ? `refused: ${address} is ${article} ${c} address` : `refused: ${host} resolves to ${article} ${c} address ${address}`;
  }

  /** A `dns.lookup` replacement for `net.connect` that refuses if any resolved address is not allowed. */
  lookupFor(host: string, port: number): net.LookupFunction {
    return (hostname, options, callback) => {
      this.lookupFn(hostname, { ...options, all: true }, (err, addresses) => {
        if (err) return callback(err, '', 0);
        const list = addresses as dns.LookupAddress[];
        for (const a of list) {
          const why = this.checkAddress(host, port, a.address);
          if (why !== null) return callback(new RefusedError(why) as unknown as NodeJS.ErrnoException, '', 0);
        }
        if (list.length === 0) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
        if (options.all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
        return callback(null, list[0]!.address, list[0]!.family);
      });
    };
  }
}

/** An undici Agent (sockets per origin bounded by `concurrency`) whose every connection passes `guard`'s address check. */
export function createGuardedAgent(concurrency: number, guard: HostGuard): Agent {
  const connectors = new Map<string, buildConnector.connector>();
  const connect: buildConnector.connector = (opts, callback) => {
    const host = stripBrackets(opts.hostname);
    const port = opts.port ? Number(opts.port) : defaultPort(opts.protocol);
    if (net.isIP(host) !== 0) {
      const why = guard.checkAddress(host, port, host);
      if (why !== null) {
        callback(new RefusedError(why), null);
        return;
      }
    }
    const key = `${opts.protocol}//${host}:${port}`;
    let c = connectors.get(key);
    if (!c) {
      c = buildConnector({ lookup: guard.lookupFor(host, port) } as buildConnector.BuildOptions);
      connectors.set(key, c);
    }
    c(opts, callback);
  };
  return new Agent({ connections: Math.max(1, concurrency), pipelining: 1, keepAliveTimeout: 10_000, connect });
}
