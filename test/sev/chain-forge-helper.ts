/**
 * Test helper: a complete, self-consistent SEV chain under an ARK/ASK of our own (RSA-2048,
 * Naples-style RSA-PSS/SHA-256), to show that a chain which verifies internally is still not
 * trusted unless its ASK||ARK was explicitly added to the TrustStore.
 */
import { constants, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { AmdUsage, amdCertBody, serializeAmdCert, type AmdCertificate } from '../../app/sev/amd-cert';
import {
  Algo,
  newEccCert,
  serializeSevCert,
  sevCertBody,
  SIG_SLOT_SIZE,
  toEccScalarLe,
  Usage,
  type SevCertificate,
} from '../../app/sev/cert';
import { concat, reversed } from '../../app/sev/bytes';

function b64url(s: string | undefined): Uint8Array {
  return new Uint8Array(Buffer.from(s ?? '', 'base64url'));
}

/** A big-endian integer as `size` little-endian bytes. */
function leFixed(be: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(reversed(be), 0);
  return out;
}

function rsaPss(key: KeyObject, data: Uint8Array, size: number): Uint8Array {
  const sig = sign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  return leFixed(new Uint8Array(sig), size);
}

export interface ForgedRoot {
  ark: AmdCertificate;
  ask: AmdCertificate;
  arkBytes: Uint8Array;
  askBytes: Uint8Array;
  /** AMD's published layout: ASK || ARK. */
  askArk: Uint8Array;
  askKey: KeyObject;
}

/** An RSA-2048 ARK (self-signed) and ASK (signed by the ARK), in AMD's format. */
export function forgeRoot(): ForgedRoot {
  const mk = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 });
  const arkKeys = mk();
  const askKeys = mk();
  const arkId = new Uint8Array(randomBytes(16));
  const askId = new Uint8Array(randomBytes(16));
  const cert = (keys: ReturnType<typeof mk>, keyId: Uint8Array, usage: number): AmdCertificate => {
    const jwk = keys.publicKey.export({ format: 'jwk' });
    return {
      version: 1,
      keyId,
      certifyingId: arkId,
      keyUsage: usage,
      reserved: new Uint8Array(16),
      pubexpBits: 2048,
      modulusBits: 2048,
      pubexp: leFixed(b64url(jwk.e), 256),
      modulus: leFixed(b64url(jwk.n), 256),
      signature: new Uint8Array(256),
    };
  };
  const ark = cert(arkKeys, arkId, AmdUsage.ARK);
  ark.signature = rsaPss(arkKeys.privateKey, amdCertBody(ark), 256);
  const ask = cert(askKeys, askId, AmdUsage.ASK);
  ask.signature = rsaPss(arkKeys.privateKey, amdCertBody(ask), 256);
  const arkBytes = serializeAmdCert(ark);
  const askBytes = serializeAmdCert(ask);
  return { ark, ask, arkBytes, askBytes, askArk: concat(askBytes, arkBytes), askKey: askKeys.privateKey };
}

interface EccKey {
  cert: SevCertificate;
  priv: KeyObject;
}

function eccCert(usage: number, algo: number): EccKey {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const jwk = publicKey.export({ format: 'jwk' });
  return {
    cert: newEccCert({ usage, algo, x: b64url(jwk.x), y: b64url(jwk.y), apiMajor: 1, apiMinor: 51 }),
    priv: privateKey,
  };
}

/** Puts a signature into the first empty slot (§1 slot filling rule). */
function fill(c: SevCertificate, usage: number, algo: number, sig: Uint8Array): void {
  const i = c.sigs[0].usage === Usage.INVALID ? 0 : 1;
  const slot = new Uint8Array(SIG_SLOT_SIZE);
  slot.set(sig, 0);
  c.sigs[i] = { usage, algo, sig: slot };
}

function ecdsaSign(signer: EccKey, c: SevCertificate): void {
  const rs = new Uint8Array(
    sign('sha256', sevCertBody(serializeSevCert(c)), { key: signer.priv, dsaEncoding: 'ieee-p1363' }),
  );
  const sig = concat(toEccScalarLe(rs.subarray(0, 48)), toEccScalarLe(rs.subarray(48)));
  fill(c, signer.cert.usage, signer.cert.algo, sig);
}

export interface ForgedChain {
  root: ForgedRoot;
  pdh: Uint8Array;
  /** PEK || OCA || CEK with the CEK unsigned, as current firmware exports it. */
  certChainUnsignedCek: Uint8Array;
  /** PEK || OCA || CEK with the ASK-signed CEK. */
  certChain: Uint8Array;
  signedCek: Uint8Array;
}

/** A complete chain: OCA self, OCA -> PEK, CEK -> PEK, PEK -> PDH, ASK -> CEK, ARK -> ASK. */
export function forgeChain(root: ForgedRoot = forgeRoot()): ForgedChain {
  const oca = eccCert(Usage.OCA, Algo.ECDSA_SHA256);
  const cek = eccCert(Usage.CEK, Algo.ECDSA_SHA256);
  const pek = eccCert(Usage.PEK, Algo.ECDSA_SHA256);
  const pdh = eccCert(Usage.PDH, Algo.ECDH_SHA256);
  ecdsaSign(oca, oca.cert);
  ecdsaSign(oca, pek.cert);
  ecdsaSign(cek, pek.cert);
  ecdsaSign(pek, pdh.cert);
  const unsignedCek = serializeSevCert(cek.cert);
  fill(cek.cert, Usage.ASK, Algo.RSA_SHA256, rsaPss(root.askKey, sevCertBody(unsignedCek), 256));
  const signedCek = serializeSevCert(cek.cert);
  const pekBytes = serializeSevCert(pek.cert);
  const ocaBytes = serializeSevCert(oca.cert);
  return {
    root,
    pdh: serializeSevCert(pdh.cert),
    certChainUnsignedCek: concat(pekBytes, ocaBytes, unsignedCek),
    certChain: concat(pekBytes, ocaBytes, signedCek),
    signedCek,
  };
}
