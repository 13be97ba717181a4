/**
 * A simulated SNP guest speaking Trustee's RCAR protocol (docs/protocol.md §15) the way guest-components'
 * kbs_protocol client does, so the service is tested against what real guests send and expect:
 *  - POST /kbs/v0/auth `{"version": "0.4.0", "tee": "snp", "extra-params": {...}}`; the `kbs-session-id`
 *    cookie is kept in a cookie jar;
 *  - a tee key pair (EC P-256 by default, P-521, or RSA with RSA-OAEP-256) offered as a JWK;
 *  - report_data = hash (SHA-384 unless the challenge selects another) of the RFC 8785 canonical JSON of
 *    `{"nonce", "tee-pubkey", "additional-evidence": ""}`, zero-padded to 64 bytes;
 *  - POST /kbs/v0/attest with the report in virtee/sev's JSON form; the reply's JWT claims are decoded;
 *  - GET /kbs/v0/resource/<repo>/<type>/<tag> with the cookie only (no bearer token); the flattened JWE is
 *    decrypted, after rebuilding the AAD from the parsed header as the real client does (so a header that
 *    client would reject fails here too);
 *  - retries: the handshake up to 5 times 1 s apart; a 401 from the resource route re-handshakes, at most 3
 *    attempts in all.
 * Tests tamper through `hooks`. Not a security boundary: a test and demo tool.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { checkServerIdentity } from 'node:tls';
import canonicalize from 'canonicalize';
import { decodeJwt, flattenedDecrypt, type FlattenedJWE, type JWTPayload } from 'jose';
import { stringifyExact, type ExactJson } from './exact-json';
import { reportToVirteeJson, type SimulatedSnpGuest, type SnpEvidence } from './snp-firmware';

export const KBS_PROTOCOL_VERSION = '0.4.0';
export const KBS_ERROR_TYPE_PREFIX = 'https://github.com/confidential-containers/kbs/errors/';

export type TeeKeyAlgorithm = 'ECDH-ES+A256KW-P256' | 'ECDH-ES+A256KW-P521' | 'RSA-OAEP-256';

/** The tee-pubkey JWK as kbs_types serialises it (kty first, then the algorithm's members). */
export type TeePubKey =
  | { kty: 'EC'; crv: 'P-256' | 'P-521'; alg: 'ECDH-ES+A256KW'; x: string; y: string }
  | { kty: 'RSA'; alg: 'RSA-OAEP-256'; n: string; e: string };

export interface RuntimeData {
  nonce: string;
  'tee-pubkey': TeePubKey | Record<string, unknown>;
}

/** Where tests change what the guest sends. Each hook gets the honest value and returns what is sent. */
export interface SnpGuestHooks {
  /** The nonce placed in runtime-data and hashed into report_data. */
  nonce?: (nonce: string) => string;
  /** The tee-pubkey offered (and hashed). */
  teePubkey?: (jwk: TeePubKey) => TeePubKey | Record<string, unknown>;
  /** The 64 bytes handed to the firmware as report_data. */
  reportData?: (computed: Uint8Array) => Uint8Array;
  /** The VMPL the report is requested at (default the client's `vmpl`). */
  vmpl?: (vmpl: number) => number;
  /** The signed report bytes, before they are put in JSON form (flip a bit here). */
  report?: (raw: Uint8Array) => Uint8Array;
  /** The primary evidence object (`{attestation_report, cert_chain}`), after the report is in JSON form. */
  evidence?: (evidence: Record<string, unknown>) => Record<string, unknown>;
  /** The attest body text as sent. */
  attestBody?: (body: string) => string;
  /** The cookie header for a request (undefined: none). */
  cookie?: (cookie: string | undefined, route: 'attest' | 'resource') => string | undefined;
}

export interface SnpGuestClientOptions {
  /** `http(s)://host:port` of the service's guest listener. */
  baseUrl: string;
  guest: SimulatedSnpGuest;
  keyAlgorithm?: TeeKeyAlgorithm;
  /** RSA size for 'RSA-OAEP-256' (default 2048, guest-components' size). */
  rsaModulusBits?: 2048 | 4096;
  /** The VMPL the guest asks its report at (default 0, the kernel's). */
  vmpl?: number;
  /** init-data sent with attest as `{format: "toml", body}`; default none (`"init-data": null`). */
  initData?: string;
  /** Handshake attempts (default 5, guest-components' RCAR_MAX_ATTEMPT) and the pause between them. */
  handshakeAttempts?: number;
  handshakeRetryDelayMs?: number;
  /** Resource attempts, each 401 re-handshaking (default 3, KBS_GET_RESOURCE_MAX_ATTEMPT). */
  resourceAttempts?: number;
  /** TLS: trust this CA (PEM) and, if given, require the server certificate's SHA-256 fingerprint. */
  tls?: { ca: string | Uint8Array; pinnedSha256?: string };
  /** Per request; a long-polled attest (manual approval) needs more than the default 150 s? Set it. */
  requestTimeoutMs?: number;
  hooks?: SnpGuestHooks;
}

/** A refusal or failure, with the service's `{type, detail}` when it sent one. */
export class KbsClientError extends Error {
  constructor(
    readonly stage: 'auth' | 'attest' | 'resource' | 'decrypt' | 'transport',
    readonly status: number | undefined,
    /** The last segment of the error type URI (e.g. `Unauthorized`), or undefined. */
    readonly kind: string | undefined,
    readonly detail: string,
    readonly errorType?: string,
  ) {
    super(`${stage}${status !== undefined ? ` HTTP ${status}` : ''}${kind ? ` ${kind}` : ''}: ${detail}`);
    this.name = 'KbsClientError';
  }
}

interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** The cookies a server set, as a user agent keeps them (name -> value, with expiry). */
export class CookieJar {
  private readonly cookies = new Map<string, { value: string; expiresAt: number | undefined }>();

  store(setCookie: string[] | undefined, now = Date.now()): void {
    for (const line of setCookie ?? []) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair?.indexOf('=') ?? -1;
      if (!pair || eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let expiresAt: number | undefined;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        if (k?.toLowerCase() === 'max-age' && /^-?\d+$/.test(v)) expiresAt = now + Number(v) * 1000;
        else if (k?.toLowerCase() === 'expires' && expiresAt === undefined) {
          const t = Date.parse(v);
          if (!Number.isNaN(t)) expiresAt = t;
        }
      }
      if (expiresAt !== undefined && expiresAt <= now) this.cookies.delete(name);
      else this.cookies.set(name, { value, expiresAt });
    }
  }

  get(name: string, now = Date.now()): string | undefined {
    const c = this.cookies.get(name);
    if (!c) return undefined;
    if (c.expiresAt !== undefined && c.expiresAt <= now) {
      this.cookies.delete(name);
      return undefined;
    }
    return c.value;
  }

  set(name: string, value: string): void {
    this.cookies.set(name, { value, expiresAt: undefined });
  }

  header(now = Date.now()): string | undefined {
    const parts: string[] = [];
    for (const name of [...this.cookies.keys()]) {
      const v = this.get(name, now);
      if (v !== undefined) parts.push(`${name}=${v}`);
    }
    return parts.length ? parts.join('; ') : undefined;
  }

  clear(): void {
    this.cookies.clear();
  }
}

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');

/** The tee key pair and its JWK, as guest-components' TeeKeyPair exports it. */
export class TeeKeyPair {
  readonly privateKey: KeyObject;
  readonly publicJwk: TeePubKey;

  constructor(
    readonly algorithm: TeeKeyAlgorithm = 'ECDH-ES+A256KW-P256',
    rsaModulusBits = 2048,
  ) {
    if (algorithm === 'RSA-OAEP-256') {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: rsaModulusBits });
      const jwk = publicKey.export({ format: 'jwk' });
      this.privateKey = privateKey;
      this.publicJwk = { kty: 'RSA', alg: 'RSA-OAEP-256', n: jwk.n!, e: jwk.e! };
    } else {
      const crv = algorithm === 'ECDH-ES+A256KW-P521' ? 'P-521' : 'P-256';
      const { privateKey, publicKey } = generateKeyPairSync('ec', {
        namedCurve: crv === 'P-521' ? 'secp521r1' : 'prime256v1',
      });
      const jwk = publicKey.export({ format: 'jwk' });
      // Fixed-length coordinates (as the Rust client's): Node pads them to the field size already;
      // re-pad defensively so a short big-endian value never goes out short.
      const size = crv === 'P-521' ? 66 : 32;
      const pad = (s: string) => {
        const raw = Buffer.from(s, 'base64url');
        return b64u(Buffer.concat([Buffer.alloc(size - raw.length), raw]));
      };
      this.privateKey = privateKey;
      this.publicJwk = { kty: 'EC', crv, alg: 'ECDH-ES+A256KW', x: pad(jwk.x!), y: pad(jwk.y!) };
    }
  }
}

/** The hash kbs_types names (`selected-hash-algorithm`), lower case. */
const HASHES: Record<string, string> = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' };

/** report_data for the primary attester: hash of the canonical runtime data, zero-padded to 64 bytes. */
export function computeReportData(
  nonce: string,
  teePubkey: unknown,
  hash = 'sha384',
  additionalEvidence = '',
): Uint8Array {
  const text = canonicalize({ 'tee-pubkey': teePubkey, nonce, 'additional-evidence': additionalEvidence });
  if (text === undefined) throw new TypeError('runtime data has no canonical JSON form');
  const digest = createHash(hash).update(text, 'utf8').digest();
  const out = new Uint8Array(64);
  out.set(digest.subarray(0, 64));
  return out;
}

/** Rebuilds the AAD as kbs_types' ProtectedHeader::generate_aad: alg, enc, then the rest in key order. */
export function rebuildJweAad(protectedB64: string): string {
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(protectedB64, 'base64url').toString('utf8'));
  } catch {
    throw new KbsClientError('decrypt', undefined, undefined, 'the JWE protected header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new KbsClientError('decrypt', undefined, undefined, 'the JWE protected header is not an object');
  }
  const h = header as Record<string, unknown>;
  if (typeof h.alg !== 'string' || typeof h.enc !== 'string') {
    throw new KbsClientError('decrypt', undefined, undefined, 'the JWE protected header lacks alg or enc');
  }
  // serde_json's Map (no preserve_order) keeps keys sorted, at every depth.
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (v && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v as object)
          .sort()
          .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  const { alg, enc, ...rest } = h;
  const others = sorted(rest) as Record<string, unknown>;
  return b64u(Buffer.from(JSON.stringify({ alg, enc, ...others }), 'utf8'));
}

export interface AttestResult {
  token: string;
  claims: JWTPayload;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The simulated guest's KBS client; see the module comment. */
export class SnpGuestClient {
  readonly jar = new CookieJar();
  readonly key: TeeKeyPair;
  /** The last nonce received, attest body sent, token and claims (tests replay and inspect them). */
  lastNonce: string | undefined;
  lastAttestBody: string | undefined;
  lastEvidence: SnpEvidence | undefined;
  token: AttestResult | undefined;
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly opts: SnpGuestClientOptions;

  constructor(opts: SnpGuestClientOptions) {
    this.opts = opts;
    this.base = new URL(opts.baseUrl);
    this.key = new TeeKeyPair(opts.keyAlgorithm, opts.rsaModulusBits);
    if (this.base.protocol === 'https:') {
      const pin = opts.tls?.pinnedSha256?.replace(/:/g, '').toLowerCase();
      this.agent = new https.Agent({
        keepAlive: true,
        ca: opts.tls ? Buffer.from(opts.tls.ca) : undefined,
        checkServerIdentity: (host, cert) => {
          if (!pin) return checkServerIdentity(host, cert);
          // A pinned certificate is the identity itself: its fingerprint decides, not the host name.
          return cert.fingerprint256.replace(/:/g, '').toLowerCase() === pin
            ? undefined
            : new Error(`the server certificate is not the pinned one (${cert.fingerprint256})`);
        },
      });
    } else {
      this.agent = new http.Agent({ keepAlive: true });
    }
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  /** One HTTP exchange; transport failures become KbsClientError('transport'). */
  async request(
    method: 'GET' | 'POST',
    path: string,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<HttpAnswer> {
    const url = new URL(path, this.base);
    const mod = url.protocol === 'https:' ? https : http;
    const timeout = this.opts.requestTimeoutMs ?? 150_000;
    return new Promise<HttpAnswer>((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            ...(body !== undefined
              ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
              : {}),
            ...headers,
          },
          timeout,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', (e) =>
            reject(new KbsClientError('transport', undefined, undefined, (e as Error).message)),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)));
      req.on('error', (e) => reject(new KbsClientError('transport', undefined, undefined, e.message)));
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  private kbsError(stage: KbsClientError['stage'], a: HttpAnswer): KbsClientError {
    try {
      const j = JSON.parse(a.text) as { type?: unknown; detail?: unknown };
      if (typeof j.type === 'string' && typeof j.detail === 'string') {
        const kind = j.type.startsWith(KBS_ERROR_TYPE_PREFIX)
          ? j.type.slice(KBS_ERROR_TYPE_PREFIX.length)
          : undefined;
        return new KbsClientError(stage, a.status, kind, j.detail, j.type);
      }
    } catch {
      // not JSON: reported below with the raw text
    }
    return new KbsClientError(stage, a.status, undefined, `unexpected answer: ${a.text.slice(0, 200)}`);
  }

  private cookieFor(route: 'attest' | 'resource'): Record<string, string> {
    const honest = this.jar.header();
    const c = this.opts.hooks?.cookie ? this.opts.hooks.cookie(honest, route) : honest;
    return c !== undefined ? { cookie: c } : {};
  }

  /** POST /kbs/v0/auth: a fresh challenge and session cookie. */
  async auth(): Promise<{ nonce: string; extraParams: unknown }> {
    const body = JSON.stringify({
      version: KBS_PROTOCOL_VERSION,
      tee: 'snp',
      'extra-params': { 'supported-hash-algorithms': ['sha256', 'sha384', 'sha512'] },
    });
    const a = await this.request('POST', '/kbs/v0/auth', body);
    if (a.status !== 200) throw this.kbsError('auth', a);
    this.jar.store(setCookies(a.headers));
    let j: { nonce?: unknown; 'extra-params'?: unknown };
    try {
      j = JSON.parse(a.text) as typeof j;
    } catch {
      throw new KbsClientError('auth', a.status, undefined, 'the challenge is not JSON');
    }
    if (typeof j.nonce !== 'string') throw new KbsClientError('auth', a.status, undefined, 'no nonce');
    if (!('extra-params' in j)) {
      throw new KbsClientError('auth', a.status, undefined, 'the challenge lacks extra-params');
    }
    this.lastNonce = j.nonce;
    return { nonce: j.nonce, extraParams: j['extra-params'] };
  }

  /** The attest body for a challenge (evidence from the simulated firmware). */
  buildAttestBody(nonce: string, extraParams: unknown): string {
    const hooks = this.opts.hooks ?? {};
    const sentNonce = hooks.nonce ? hooks.nonce(nonce) : nonce;
    const teePubkey = hooks.teePubkey ? hooks.teePubkey(this.key.publicJwk) : this.key.publicJwk;
    const selected =
      extraParams && typeof extraParams === 'object'
        ? (extraParams as Record<string, unknown>)['selected-hash-algorithm']
        : undefined;
    const hash = typeof selected === 'string' ? HASHES[selected.toLowerCase()] : 'sha384';
    if (!hash) throw new KbsClientError('attest', undefined, undefined, `unknown hash ${String(selected)}`);
    const computed = computeReportData(sentNonce, teePubkey, hash);
    const reportData = hooks.reportData ? hooks.reportData(computed) : computed;
    const vmpl = hooks.vmpl ? hooks.vmpl(this.opts.vmpl ?? 0) : (this.opts.vmpl ?? 0);
    let evidence = this.opts.guest.getEvidence(reportData, vmpl);
    if (hooks.report) {
      const tampered = hooks.report(evidence.report);
      evidence = { ...evidence, report: tampered };
      evidence.json = {
        ...evidence.json,
        attestation_report: reportToJsonFor(this.opts.guest, tampered),
      };
    }
    this.lastEvidence = evidence;
    let primary = evidence.json as unknown as Record<string, unknown>;
    if (hooks.evidence) primary = hooks.evidence(primary);
    const body = stringifyExactJson({
      'init-data': this.opts.initData !== undefined ? { format: 'toml', body: this.opts.initData } : null,
      'runtime-data': { nonce: sentNonce, 'tee-pubkey': teePubkey },
      'tee-evidence': { primary_evidence: primary, additional_evidence: '' },
    });
    return hooks.attestBody ? hooks.attestBody(body) : body;
  }

  /** POST /kbs/v0/attest with a body (default: built for the last challenge). */
  async attest(body?: string): Promise<AttestResult> {
    let text = body;
    if (text === undefined) {
      if (this.lastNonce === undefined) throw new Error('attest before auth');
      text = this.buildAttestBody(this.lastNonce, undefined);
    }
    this.lastAttestBody = text;
    const a = await this.request('POST', '/kbs/v0/attest', text, this.cookieFor('attest'));
    if (a.status !== 200) throw this.kbsError('attest', a);
    this.jar.store(setCookies(a.headers));
    let token: unknown;
    try {
      token = (JSON.parse(a.text) as { token?: unknown }).token;
    } catch {
      throw new KbsClientError('attest', a.status, undefined, 'the attest reply is not JSON');
    }
    if (typeof token !== 'string') throw new KbsClientError('attest', a.status, undefined, 'no token');
    let claims: JWTPayload;
    try {
      claims = decodeJwt(token);
    } catch (e) {
      // guest-components' Token::new fails the same way on a token that is not a JWT.
      throw new KbsClientError(
        'attest',
        a.status,
        undefined,
        `the token is not a JWT: ${(e as Error).message}`,
      );
    }
    this.token = { token, claims };
    return this.token;
  }

  /** One RCAR handshake: auth then attest, with the challenge's selected hash. */
  async handshake(): Promise<AttestResult> {
    const { nonce, extraParams } = await this.auth();
    return this.attest(this.buildAttestBody(nonce, extraParams));
  }

  /** The handshake with guest-components' retries (5 attempts, 1 s apart, by default). */
  async handshakeWithRetries(): Promise<AttestResult> {
    const attempts = this.opts.handshakeAttempts ?? 5;
    const delay = this.opts.handshakeRetryDelayMs ?? 1000;
    let last: unknown;
    for (let i = 1; i <= attempts; i++) {
      try {
        return await this.handshake();
      } catch (e) {
        last = e;
        if (i < attempts) await sleep(delay);
      }
    }
    throw last;
  }

  /** True when the token's claims say it is still valid (exp, nbf in seconds), as Token::check_valid. */
  tokenValid(nowSeconds = Math.floor(Date.now() / 1000)): boolean {
    const c = this.token?.claims;
    if (!c) return false;
    if (typeof c.exp === 'number' && c.exp < nowSeconds) return false;
    if (typeof c.nbf === 'number' && c.nbf > nowSeconds) return false;
    return true;
  }

  /** GET one resource once with the cookie only; the JWE answer decrypted. */
  async fetchResourceOnce(
    path: string,
  ): Promise<{ status: number; value?: Uint8Array; error?: KbsClientError }> {
    const a = await this.request('GET', `/kbs/v0/resource/${path}`, undefined, this.cookieFor('resource'));
    if (a.status !== 200) return { status: a.status, error: this.kbsError('resource', a) };
    return { status: 200, value: await this.decrypt(a.text) };
  }

  /**
   * A resource as guest-components' get_resource fetches it: a token first (handshake with retries) if
   * there is none or it expired; a 401 re-handshakes once and tries again, at most `resourceAttempts` times.
   */
  async getResource(path: string): Promise<Uint8Array> {
    if (!this.tokenValid()) await this.handshakeWithRetries();
    const attempts = this.opts.resourceAttempts ?? 3;
    let last: KbsClientError | undefined;
    for (let i = 1; i <= attempts; i++) {
      const r = await this.fetchResourceOnce(path);
      if (r.value) return r.value;
      last = r.error;
      if (r.status !== 401) throw r.error;
      await this.handshake();
    }
    throw new KbsClientError(
      'resource',
      401,
      last?.kind,
      `still unauthorized after ${attempts} attempts: ${last?.detail}`,
    );
  }

  /** Decrypts a flattened JWE as guest-components does (see the module comment). */
  async decrypt(text: string): Promise<Uint8Array> {
    const fail = (m: string): never => {
      throw new KbsClientError('decrypt', 200, undefined, m);
    };
    let jwe: Record<string, unknown>;
    try {
      jwe = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return fail('the resource answer is not JSON');
    }
    for (const f of ['protected', 'encrypted_key', 'iv', 'ciphertext', 'tag']) {
      const v = jwe[f];
      if (typeof v !== 'string') fail(`the JWE lacks ${f}`);
      // The Rust client decodes base64url without padding: '=' or '+' '/' fail there.
      if (!/^[A-Za-z0-9_-]*$/.test(v as string)) fail(`the JWE ${f} is not unpadded base64url`);
    }
    // kbs_types ignores an `aad` member and builds the AAD from the header alone; jose would use it.
    if ('aad' in jwe) fail('the JWE carries an aad member, which the real client ignores (tag mismatch)');
    if ('header' in jwe || 'unprotected' in jwe) fail('the JWE carries unprotected headers');
    const protectedB64 = jwe.protected as string;
    const rebuilt = rebuildJweAad(protectedB64);
    if (rebuilt !== protectedB64) {
      fail('the protected header is not in the form the real client rebuilds (alg, enc, then sorted keys)');
    }
    const header = JSON.parse(Buffer.from(protectedB64, 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    if (header.enc !== 'A256GCM')
      fail(`enc ${String(header.enc)}: the real client decrypts AES-256-GCM only`);
    const wantAlg = this.key.algorithm === 'RSA-OAEP-256' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
    if (header.alg !== wantAlg) fail(`alg ${String(header.alg)} does not fit this ${wantAlg} key`);
    if (wantAlg === 'ECDH-ES+A256KW') {
      const epk = header.epk as Record<string, unknown> | undefined;
      if (!epk || epk.crv !== (this.key.publicJwk as { crv: string }).crv) fail('epk curve does not match');
    }
    try {
      const { plaintext } = await flattenedDecrypt(jwe as unknown as FlattenedJWE, this.key.privateKey, {
        keyManagementAlgorithms: [wantAlg],
        contentEncryptionAlgorithms: ['A256GCM'],
      });
      return plaintext;
    } catch (e) {
      return fail(`decryption failed: ${(e as Error).message}`);
    }
  }
}

function setCookies(h: http.IncomingHttpHeaders): string[] | undefined {
  const v = h['set-cookie'];
  return v === undefined ? undefined : Array.isArray(v) ? v : [v];
}

function reportToJsonFor(guest: SimulatedSnpGuest, raw: Uint8Array) {
  return reportToVirteeJson(raw, guest.firmware.product);
}

function stringifyExactJson(v: unknown): string {
  return stringifyExact(v as ExactJson);
}
