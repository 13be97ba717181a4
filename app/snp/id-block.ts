/**
 * SEV-SNP ID block and ID authentication structure (docs/protocol.md §14). The guest owner signs the
 * expected launch digest and policy with an ID key (itself signed by an optional author key); QEMU passes
 * both to SNP_LAUNCH_FINISH and the firmware refuses to launch an image that differs. Attestation reports
 * then carry SHA-384 of the two public keys (ID_KEY_DIGEST, AUTHOR_KEY_DIGEST), so a verifier can trust
 * "whatever this key signed" instead of a list of digests.
 *
 * Keys are node:crypto KeyObjects so they can come from PEM files or, later, from the OS keychain.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { toBase64 } from '../sev/bytes';
import { SevError } from '../sev/errors';

export const ID_BLOCK_SIZE = 0x60;
export const ID_AUTH_SIZE = 0x1000;
/** The firmware's public key structure: u32 curve, Qx and Qy (72 bytes little-endian each), reserved. */
export const SNP_PUBLIC_KEY_SIZE = 0x404;
/** The firmware's signature structure: r and s (72 bytes little-endian each), reserved. */
export const SNP_SIGNATURE_SIZE = 0x200;

/** ID block field offsets. */
const BLOCK = {
  digest: 0x00,
  familyId: 0x30,
  imageId: 0x40,
  version: 0x50,
  guestSvn: 0x54,
  policy: 0x58,
} as const;
/** ID auth field offsets. */
const AUTH = {
  idKeyAlgo: 0x000,
  authorKeyAlgo: 0x004,
  idBlockSig: 0x040,
  idKey: 0x240,
  idKeySig: 0x680,
  authorKey: 0x880,
  end: 0xc84,
} as const;

/** Signature algorithm 1: ECDSA P-384 with SHA-384 (the only one the firmware defines). */
export const ALGO_ECDSA_P384_SHA384 = 1;
/** Curve 2 in the public key structure: P-384. */
export const CURVE_P384 = 2;
const COORD_FIELD = 72;
const P384_BYTES = 48;
const ID_BLOCK_VERSION = 1;
const U64_MAX = (1n << 64n) - 1n;

export interface IdBlockFields {
  /** The expected launch digest (48 bytes). */
  launchDigest: Uint8Array;
  /** 16 bytes, default zeros. */
  familyId?: Uint8Array;
  /** 16 bytes, default zeros. */
  imageId?: Uint8Array;
  /** u32, default 0. */
  guestSvn?: number;
  /** The guest policy (u64) the VM must be launched with. */
  policy: bigint;
}

export interface DecodedIdBlock extends Required<IdBlockFields> {
  version: number;
}

function checkLength(b: Uint8Array, n: number, what: string): void {
  if (b.length !== n) throw new SevError('bad-length', `${what} is ${n} bytes, got ${b.length}`);
}

/** The 96-byte ID block. */
export function encodeIdBlock(f: IdBlockFields): Uint8Array {
  checkLength(f.launchDigest, 48, 'the launch digest');
  const familyId = f.familyId ?? new Uint8Array(16);
  const imageId = f.imageId ?? new Uint8Array(16);
  checkLength(familyId, 16, 'the family ID');
  checkLength(imageId, 16, 'the image ID');
  const svn = f.guestSvn ?? 0;
  if (!Number.isInteger(svn) || svn < 0 || svn > 0xffffffff) {
    throw new SevError('bad-format', `the guest SVN must be a u32, got ${svn}`);
  }
  if (f.policy < 0n || f.policy > U64_MAX) {
    throw new SevError('bad-policy', `the guest policy must be a u64, got ${f.policy}`);
  }
  const b = Buffer.alloc(ID_BLOCK_SIZE);
  b.set(f.launchDigest, BLOCK.digest);
  b.set(familyId, BLOCK.familyId);
  b.set(imageId, BLOCK.imageId);
  b.writeUInt32LE(ID_BLOCK_VERSION, BLOCK.version);
  b.writeUInt32LE(svn, BLOCK.guestSvn);
  b.writeBigUInt64LE(f.policy, BLOCK.policy);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function decodeIdBlock(block: Uint8Array): DecodedIdBlock {
  checkLength(block, ID_BLOCK_SIZE, 'an ID block');
  const b = Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  return {
    launchDigest: Uint8Array.from(block.subarray(BLOCK.digest, BLOCK.digest + 48)),
    familyId: Uint8Array.from(block.subarray(BLOCK.familyId, BLOCK.familyId + 16)),
    imageId: Uint8Array.from(block.subarray(BLOCK.imageId, BLOCK.imageId + 16)),
    version: b.readUInt32LE(BLOCK.version),
    guestSvn: b.readUInt32LE(BLOCK.guestSvn),
    policy: b.readBigUInt64LE(BLOCK.policy),
  };
}

function isP384(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1';
}

function publicOf(key: KeyObject, what: string): KeyObject {
  if (!isP384(key)) {
    throw new SevError('bad-curve', `the ${what} must be an ECDSA P-384 key (the only curve SNP accepts)`);
  }
  return key.type === 'private' ? createPublicKey(key) : key;
}

/** A 48-byte big-endian number as a 72-byte little-endian field. */
function toLeField(bigEndian: Uint8Array, out: Uint8Array, off: number): void {
  for (let i = 0; i < bigEndian.length; i++) out[off + i] = bigEndian[bigEndian.length - 1 - i]!;
}

/** A 72-byte little-endian field as 48 big-endian bytes; undefined when it does not fit in 48 bytes. */
function fromLeField(field: Uint8Array): Uint8Array | undefined {
  if (field.subarray(P384_BYTES).some((x) => x !== 0)) return undefined;
  return Uint8Array.from(field.subarray(0, P384_BYTES)).reverse();
}

/** The firmware's 0x404-byte form of a P-384 public key (a private key gives its public half). */
export function encodeSnpPublicKey(key: KeyObject, what = 'key'): Uint8Array {
  const jwk = publicOf(key, what).export({ format: 'jwk' });
  const out = new Uint8Array(SNP_PUBLIC_KEY_SIZE);
  Buffer.from(out.buffer).writeUInt32LE(CURVE_P384, 0);
  toLeField(Buffer.from(jwk.x!, 'base64url'), out, 4);
  toLeField(Buffer.from(jwk.y!, 'base64url'), out, 4 + COORD_FIELD);
  return out;
}

/** A KeyObject from the 0x404-byte structure; bad curve, non-zero reserved bytes or a point off the curve fail. */
export function decodeSnpPublicKey(bytes: Uint8Array, what = 'public key'): KeyObject {
  checkLength(bytes, SNP_PUBLIC_KEY_SIZE, `the ${what} structure`);
  const curve = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32LE(0);
  if (curve !== CURVE_P384)
    throw new SevError('bad-curve', `the ${what} has curve ${curve}, expected 2 (P-384)`);
  const x = fromLeField(bytes.subarray(4, 4 + COORD_FIELD));
  const y = fromLeField(bytes.subarray(4 + COORD_FIELD, 4 + 2 * COORD_FIELD));
  if (!x || !y || bytes.subarray(4 + 2 * COORD_FIELD).some((b) => b !== 0)) {
    throw new SevError('bad-key', `the ${what} has bytes set outside its coordinates`);
  }
  try {
    return createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-384',
        x: Buffer.from(x).toString('base64url'),
        y: Buffer.from(y).toString('base64url'),
      },
      format: 'jwk',
    });
  } catch {
    throw new SevError('bad-key', `the ${what} is not a point on P-384`);
  }
}

/** SHA-384 of the 0x404-byte key structure: the ID_KEY_DIGEST / AUTHOR_KEY_DIGEST a report carries. */
export function snpKeyDigest(key: KeyObject | Uint8Array): Uint8Array {
  const structure = key instanceof Uint8Array ? key : encodeSnpPublicKey(key);
  checkLength(structure, SNP_PUBLIC_KEY_SIZE, 'the public key structure');
  return new Uint8Array(createHash('sha384').update(structure).digest());
}

/** An ECDSA P-384 / SHA-384 signature in the firmware's 0x200-byte form. */
export function signSnp(privateKey: KeyObject, data: Uint8Array, what = 'key'): Uint8Array {
  if (privateKey.type !== 'private') throw new SevError('bad-key', `signing needs the private ${what}`);
  publicOf(privateKey, what);
  const rs = sign('sha384', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const out = new Uint8Array(SNP_SIGNATURE_SIZE);
  toLeField(rs.subarray(0, P384_BYTES), out, 0);
  toLeField(rs.subarray(P384_BYTES), out, COORD_FIELD);
  return out;
}

/** Whether `sig` (0x200-byte form, reserved bytes zero) is `publicKey`'s signature over `data`. */
export function verifySnpSignature(publicKey: KeyObject, data: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== SNP_SIGNATURE_SIZE || sig.subarray(2 * COORD_FIELD).some((b) => b !== 0)) return false;
  const r = fromLeField(sig.subarray(0, COORD_FIELD));
  const s = fromLeField(sig.subarray(COORD_FIELD, 2 * COORD_FIELD));
  if (!r || !s) return false;
  return verify('sha384', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
}

/**
 * The 4096-byte ID auth: the ID key's signature over the block and the ID public key, and, with an author
 * key, its signature over the ID key structure and the author public key.
 */
export function encodeIdAuth(idBlock: Uint8Array, idKey: KeyObject, authorKey?: KeyObject): Uint8Array {
  checkLength(idBlock, ID_BLOCK_SIZE, 'an ID block');
  const auth = new Uint8Array(ID_AUTH_SIZE);
  const view = Buffer.from(auth.buffer);
  const idKeyStructure = encodeSnpPublicKey(idKey, 'ID key');
  view.writeUInt32LE(ALGO_ECDSA_P384_SHA384, AUTH.idKeyAlgo);
  auth.set(signSnp(idKey, idBlock, 'ID key'), AUTH.idBlockSig);
  auth.set(idKeyStructure, AUTH.idKey);
  if (authorKey) {
    view.writeUInt32LE(ALGO_ECDSA_P384_SHA384, AUTH.authorKeyAlgo);
    auth.set(signSnp(authorKey, idKeyStructure, 'author key'), AUTH.idKeySig);
    auth.set(encodeSnpPublicKey(authorKey, 'author key'), AUTH.authorKey);
  }
  return auth;
}

export interface IdBlockAndAuth {
  idBlock: Uint8Array;
  idAuth: Uint8Array;
  idKeyDigest: Uint8Array;
  /** Absent without an author key. */
  authorKeyDigest?: Uint8Array;
  /** Base64, as libvirt's `<idBlock>` / `<idAuth>` and QEMU's id-block / id-auth take them. */
  idBlockBase64: string;
  idAuthBase64: string;
}

/** Builds and signs an ID block; `idKey` and `authorKey` are P-384 private keys. */
export function createIdBlock(
  fields: IdBlockFields,
  idKey: KeyObject,
  authorKey?: KeyObject,
): IdBlockAndAuth {
  const idBlock = encodeIdBlock(fields);
  const idAuth = encodeIdAuth(idBlock, idKey, authorKey);
  const r: IdBlockAndAuth = {
    idBlock,
    idAuth,
    idKeyDigest: snpKeyDigest(idAuth.subarray(AUTH.idKey, AUTH.idKey + SNP_PUBLIC_KEY_SIZE)),
    idBlockBase64: toBase64(idBlock),
    idAuthBase64: toBase64(idAuth),
  };
  if (authorKey)
    r.authorKeyDigest = snpKeyDigest(idAuth.subarray(AUTH.authorKey, AUTH.authorKey + SNP_PUBLIC_KEY_SIZE));
  return r;
}

export interface VerifiedIdBlock {
  block: DecodedIdBlock;
  idKeyDigest: Uint8Array;
  /** Present when the auth carries an author key. */
  authorKeyDigest?: Uint8Array;
}

const isZero = (b: Uint8Array) => b.every((x) => x === 0);

/**
 * Checks an ID block and its auth as the firmware does (the ID key's signature over the block, the author
 * key's over the ID key), plus what the firmware leaves loose: known algorithms, a version-1 block, zero
 * reserved bytes. With `expected` digests, the keys must be those. Every failure is a SevError.
 */
export function verifyIdBlock(
  idBlock: Uint8Array,
  idAuth: Uint8Array,
  expected: { idKeyDigest?: Uint8Array; authorKeyDigest?: Uint8Array } = {},
): VerifiedIdBlock {
  const block = decodeIdBlock(idBlock);
  checkLength(idAuth, ID_AUTH_SIZE, 'an ID auth');
  if (block.version !== ID_BLOCK_VERSION) {
    throw new SevError('bad-version', `the ID block has version ${block.version}, expected 1`);
  }
  const view = Buffer.from(idAuth.buffer, idAuth.byteOffset, idAuth.byteLength);
  const idAlgo = view.readUInt32LE(AUTH.idKeyAlgo);
  const authorAlgo = view.readUInt32LE(AUTH.authorKeyAlgo);
  if (idAlgo !== ALGO_ECDSA_P384_SHA384) {
    throw new SevError(
      'bad-algorithm',
      `the ID key algorithm is ${idAlgo}, expected 1 (ECDSA P-384 SHA-384)`,
    );
  }
  const reserved = [
    idAuth.subarray(0x008, AUTH.idBlockSig),
    idAuth.subarray(AUTH.idKey + SNP_PUBLIC_KEY_SIZE, AUTH.idKeySig),
    idAuth.subarray(AUTH.end),
  ];
  if (!reserved.every(isZero)) throw new SevError('bad-format', 'the ID auth has non-zero reserved bytes');

  const idKeyStructure = idAuth.subarray(AUTH.idKey, AUTH.idKey + SNP_PUBLIC_KEY_SIZE);
  const idKey = decodeSnpPublicKey(idKeyStructure, 'ID key');
  if (
    !verifySnpSignature(
      idKey,
      idBlock,
      idAuth.subarray(AUTH.idBlockSig, AUTH.idBlockSig + SNP_SIGNATURE_SIZE),
    )
  ) {
    throw new SevError(
      'bad-signature',
      'the ID block signature does not verify with the ID key in the ID auth',
    );
  }
  const result: VerifiedIdBlock = { block, idKeyDigest: snpKeyDigest(idKeyStructure) };

  const authorStructure = idAuth.subarray(AUTH.authorKey, AUTH.authorKey + SNP_PUBLIC_KEY_SIZE);
  const idKeySig = idAuth.subarray(AUTH.idKeySig, AUTH.idKeySig + SNP_SIGNATURE_SIZE);
  if (authorAlgo === 0 && isZero(authorStructure) && isZero(idKeySig)) {
    if (expected.authorKeyDigest)
      throw new SevError('bad-key', 'an author key was expected but the ID auth has none');
  } else {
    if (authorAlgo !== ALGO_ECDSA_P384_SHA384) {
      throw new SevError(
        'bad-algorithm',
        `the author key algorithm is ${authorAlgo}, expected 1 (ECDSA P-384 SHA-384)`,
      );
    }
    const authorKey = decodeSnpPublicKey(authorStructure, 'author key');
    if (!verifySnpSignature(authorKey, idKeyStructure, idKeySig)) {
      throw new SevError(
        'bad-signature',
        'the ID key signature does not verify with the author key in the ID auth',
      );
    }
    result.authorKeyDigest = snpKeyDigest(authorStructure);
  }
  const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;
  if (expected.idKeyDigest && !same(expected.idKeyDigest, result.idKeyDigest)) {
    throw new SevError(
      'bad-key',
      'the ID key in the ID auth is not the expected one (ID key digest differs)',
    );
  }
  if (
    expected.authorKeyDigest &&
    !(result.authorKeyDigest && same(expected.authorKeyDigest, result.authorKeyDigest))
  ) {
    throw new SevError(
      'bad-key',
      'the author key in the ID auth is not the expected one (author key digest differs)',
    );
  }
  return result;
}

/** A P-384 private key from PEM (SEC1 "EC PRIVATE KEY" or PKCS#8); `what` names it in errors. */
export function loadP384PrivateKeyPem(pem: string | Uint8Array, what: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(pem), format: 'pem' });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new SevError('bad-key', `the ${what} is not a readable unencrypted PEM private key (${why})`);
  }
  if (!isP384(key)) {
    throw new SevError('bad-curve', `the ${what} must be an ECDSA P-384 key (the only curve SNP accepts)`);
  }
  return key;
}
