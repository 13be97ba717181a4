/**
 * The attest reply's token (docs/protocol.md §15). guest-components decodes its claims (`exp`, `nbf`, in
 * seconds) to know when to re-attest, so it must be a real JWT; SEV Attest signs it with ES256 (JOSE
 * form: the signature is r || s, 32 bytes each, not DER). The resource route itself trusts the session
 * cookie, not this token; `verify` exists for callers that do take the token back.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { KbsProtocolError } from './errors';
import { parseJsonLossless } from './lossless-json';

export interface KbsTokenIssuerOptions {
  /** A P-256 private key; generated when absent. */
  key?: KeyObject;
  /** Lifetime of a token; default 5 minutes. */
  ttlSeconds?: number;
  /** The `iss` claim; default "sev-attest". */
  issuer?: string;
  /** Milliseconds since the epoch (tests pin it). */
  now?: () => number;
}

const HEADER = { alg: 'ES256', typ: 'JWT' };
const RESERVED = ['iss', 'iat', 'nbf', 'exp', 'jti'];

function b64uJson(v: unknown): string {
  return Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');
}

function bad(msg: string): never {
  throw new KbsProtocolError('TokenVerifierError', `token: ${msg}`);
}

export class KbsTokenIssuer {
  private readonly key: KeyObject;
  private readonly publicKey: KeyObject;
  private readonly ttlSeconds: number;
  private readonly issuer: string;
  private readonly now: () => number;

  constructor(opts: KbsTokenIssuerOptions = {}) {
    this.key = opts.key ?? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    if (
      this.key.type !== 'private' ||
      this.key.asymmetricKeyType !== 'ec' ||
      this.key.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
    ) {
      throw new RangeError('KbsTokenIssuer needs a P-256 private key');
    }
    this.publicKey = createPublicKey(this.key);
    this.ttlSeconds = opts.ttlSeconds ?? 300;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 1)
      throw new RangeError('ttlSeconds must be a positive integer');
    this.issuer = opts.issuer ?? 'sev-attest';
    this.now = opts.now ?? Date.now;
  }

  /** Signs the caller's claims plus iss, iat, nbf, exp and a random jti (these five are ours). */
  issue(claims: Record<string, unknown>): { token: string; expiresAt: number } {
    for (const k of RESERVED) if (k in claims) throw new RangeError(`claim "${k}" is set by the issuer`);
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + this.ttlSeconds;
    const payload = {
      ...claims,
      iss: this.issuer,
      iat,
      nbf: iat,
      exp,
      jti: randomBytes(16).toString('base64url'),
    };
    const signingInput = `${b64uJson(HEADER)}.${b64uJson(payload)}`;
    const sig = sign('sha256', Buffer.from(signingInput, 'ascii'), {
      key: this.key,
      dsaEncoding: 'ieee-p1363',
    });
    return { token: `${signingInput}.${sig.toString('base64url')}`, expiresAt: exp };
  }

  /** The claims of a token this issuer signed that is valid now; anything else throws KbsProtocolError. */
  verify(token: string): Record<string, unknown> {
    if (typeof token !== 'string' || token.length > 16 * 1024) bad('malformed');
    const parts = token.split('.');
    if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) bad('malformed');
    const [h, p, s] = parts as [string, string, string];
    const header = this.json(h);
    if (header.alg !== 'ES256') bad('unexpected algorithm');
    const sig = Buffer.from(s, 'base64url');
    if (sig.length !== 64) bad('bad signature');
    const ok = verify(
      'sha256',
      Buffer.from(`${h}.${p}`, 'ascii'),
      { key: this.publicKey, dsaEncoding: 'ieee-p1363' },
      sig,
    );
    if (!ok) bad('bad signature');
    const claims = this.json(p);
    const now = Math.floor(this.now() / 1000);
    if (claims.iss !== this.issuer) bad('unexpected issuer');
    if (typeof claims.exp !== 'number' || typeof claims.nbf !== 'number') bad('missing exp or nbf');
    if (now >= claims.exp) bad('expired');
    if (now < claims.nbf) bad('not valid yet');
    return claims;
  }

  /** The verification key as a public JWK (ES256, with a thumbprint-free kid left to the caller). */
  publicJwk(): Record<string, unknown> {
    return { ...this.publicKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig' };
  }

  private json(part: string): Record<string, unknown> {
    let v: unknown;
    try {
      v = parseJsonLossless(Buffer.from(part, 'base64url').toString('utf8'), {
        maxDepth: 8,
        errorKind: 'TokenVerifierError',
      });
    } catch {
      bad('malformed');
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('malformed');
    return v as Record<string, unknown>;
  }
}
