import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SevError } from '../sev/errors';
import {
  createIdBlock,
  decodeIdBlock,
  decodeSnpPublicKey,
  encodeIdBlock,
  encodeSnpPublicKey,
  ID_AUTH_SIZE,
  ID_BLOCK_SIZE,
  loadP384PrivateKeyPem,
  snpKeyDigest,
  verifyIdBlock,
} from './id-block';

const DIR = 'test/fixtures/snp/measure';
const idKey = loadP384PrivateKeyPem(readFileSync(join(DIR, 'id_key_test.pem')), 'ID key');
const authorKey = loadP384PrivateKeyPem(readFileSync(join(DIR, 'author_key_test.pem')), 'author key');
/** One run of sev-snp-measure's id_block.py on the test keys (see the fixtures README). */
const python = JSON.parse(readFileSync(join(DIR, 'id-block-python.json'), 'utf8')) as {
  measurement: string;
  idBlock: string;
  idAuth: string;
  idKeyDigest: string;
  authorKeyDigest: string;
};
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

function sevErrorOf(f: () => unknown): SevError {
  try {
    f();
  } catch (e) {
    if (e instanceof SevError) return e;
    throw e;
  }
  throw new Error('expected a SevError, nothing was thrown');
}

describe('ID block and auth against sev-snp-measure', () => {
  const made = createIdBlock(
    { launchDigest: Buffer.from(python.measurement, 'hex'), policy: 0x30000n },
    idKey,
    authorKey,
  );

  it('the block bytes and both key digests equal the Python tool output', () => {
    expect(made.idBlockBase64).toBe(python.idBlock);
    expect(b64(made.idKeyDigest)).toBe(python.idKeyDigest);
    expect(b64(made.authorKeyDigest!)).toBe(python.authorKeyDigest);
    expect(made.idBlock.length).toBe(ID_BLOCK_SIZE);
    expect(made.idAuth.length).toBe(ID_AUTH_SIZE);
  });

  it('the auth equals the Python one everywhere except the (randomized) signature values', () => {
    const theirs = unb64(python.idAuth);
    const sigValues = (off: number) => [off, off + 144] as const; // r and s; the rest of the 0x200 is reserved
    const masked = (a: Uint8Array) => {
      const c = Uint8Array.from(a);
      for (const [from, to] of [sigValues(0x40), sigValues(0x680)]) c.fill(0, from, to);
      return c;
    };
    expect(b64(masked(made.idAuth))).toBe(b64(masked(theirs)));
  });

  it('our auth and the Python auth both verify, with the expected key digests', () => {
    for (const auth of [made.idAuth, unb64(python.idAuth)]) {
      const v = verifyIdBlock(unb64(python.idBlock), auth, {
        idKeyDigest: unb64(python.idKeyDigest),
        authorKeyDigest: unb64(python.authorKeyDigest),
      });
      expect(b64(v.idKeyDigest)).toBe(python.idKeyDigest);
      expect(b64(v.authorKeyDigest!)).toBe(python.authorKeyDigest);
      expect(v.block.policy).toBe(0x30000n);
    }
  });

  it('any changed byte of the block or of the auth fails verification with a SevError', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.nat(ID_AUTH_SIZE - 1),
        fc.integer({ min: 1, max: 255 }),
        (inBlock, pos, xor) => {
          const block = Uint8Array.from(made.idBlock);
          const auth = Uint8Array.from(made.idAuth);
          if (inBlock) block[pos % ID_BLOCK_SIZE]! ^= xor;
          else auth[pos]! ^= xor;
          expect(() => verifyIdBlock(block, auth)).toThrow(SevError);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('every byte position of the block matters (exhaustive, one bit each)', () => {
    for (let i = 0; i < ID_BLOCK_SIZE; i++) {
      const block = Uint8Array.from(made.idBlock);
      block[i]! ^= 0x01;
      expect(() => verifyIdBlock(block, made.idAuth)).toThrow(SevError);
    }
  });

  it('a different expected key digest is refused', () => {
    const other = snpKeyDigest(authorKey);
    expect(sevErrorOf(() => verifyIdBlock(made.idBlock, made.idAuth, { idKeyDigest: other })).code).toBe(
      'bad-key',
    );
    expect(
      sevErrorOf(() => verifyIdBlock(made.idBlock, made.idAuth, { authorKeyDigest: made.idKeyDigest })).code,
    ).toBe('bad-key');
  });
});

describe('ID block fields', () => {
  it('round-trips family/image IDs, SVN and a full u64 policy at their offsets', () => {
    const f = {
      launchDigest: new Uint8Array(48).fill(0xab),
      familyId: new Uint8Array(16).fill(1),
      imageId: new Uint8Array(16).fill(2),
      guestSvn: 0xfffffffe,
      policy: 0xffffffffffffffffn,
    };
    const b = encodeIdBlock(f);
    expect(Buffer.from(b.subarray(0x50, 0x54)).readUInt32LE()).toBe(1);
    expect(b[0x30]).toBe(1);
    expect(b[0x40]).toBe(2);
    expect(decodeIdBlock(b)).toEqual({ ...f, version: 1 });
  });

  const bad: [string, () => unknown, string][] = [
    ['a 32-byte digest', () => encodeIdBlock({ launchDigest: new Uint8Array(32), policy: 0n }), 'bad-length'],
    [
      'a 2^64 policy',
      () => encodeIdBlock({ launchDigest: new Uint8Array(48), policy: 1n << 64n }),
      'bad-policy',
    ],
    [
      'an SVN above u32',
      () => encodeIdBlock({ launchDigest: new Uint8Array(48), policy: 0n, guestSvn: 2 ** 32 }),
      'bad-format',
    ],
    [
      'a short family ID',
      () => encodeIdBlock({ launchDigest: new Uint8Array(48), policy: 0n, familyId: new Uint8Array(8) }),
      'bad-length',
    ],
    [
      'a P-256 ID key',
      () => encodeSnpPublicKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
      'bad-curve',
    ],
    [
      'a PEM that is not a key',
      () => loadP384PrivateKeyPem('-----BEGIN NOTHING-----\n', 'ID key'),
      'bad-key',
    ],
    [
      'an RSA PEM',
      () =>
        loadP384PrivateKeyPem(
          generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({
            type: 'pkcs8',
            format: 'pem',
          }),
          'ID key',
        ),
      'bad-curve',
    ],
    ['a 95-byte block', () => verifyIdBlock(new Uint8Array(95), new Uint8Array(ID_AUTH_SIZE)), 'bad-length'],
    [
      'a 4095-byte auth',
      () =>
        verifyIdBlock(encodeIdBlock({ launchDigest: new Uint8Array(48), policy: 0n }), new Uint8Array(4095)),
      'bad-length',
    ],
  ];
  for (const [name, f, code] of bad) {
    it(`rejects ${name} with a typed error`, () => {
      expect(sevErrorOf(f).code).toBe(code);
    });
  }
});

describe('keys', () => {
  it('the public key structure round-trips and PKCS#8 PEM works too', () => {
    const pkcs8 = idKey.export({ type: 'pkcs8', format: 'pem' });
    const again = loadP384PrivateKeyPem(pkcs8, 'ID key');
    const s = encodeSnpPublicKey(again);
    expect(s.length).toBe(0x404);
    expect(encodeSnpPublicKey(decodeSnpPublicKey(s))).toEqual(s);
    expect(snpKeyDigest(s)).toEqual(snpKeyDigest(idKey));
  });

  it('without an author key the author fields are zero and the auth still verifies', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const r = createIdBlock({ launchDigest: new Uint8Array(48).fill(7), policy: 0x30000n }, privateKey);
    expect(r.authorKeyDigest).toBeUndefined();
    expect(r.idAuth.subarray(0x680).every((b) => b === 0)).toBe(true);
    expect(verifyIdBlock(r.idBlock, r.idAuth).authorKeyDigest).toBeUndefined();
    expect(
      sevErrorOf(() => verifyIdBlock(r.idBlock, r.idAuth, { authorKeyDigest: r.idKeyDigest })).code,
    ).toBe('bad-key');
  });

  it('an ID block signed by another key does not verify under the original ID key', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const a = createIdBlock({ launchDigest: new Uint8Array(48), policy: 0x30000n }, idKey, authorKey);
    const b = createIdBlock({ launchDigest: new Uint8Array(48), policy: 0x30000n }, privateKey, authorKey);
    const spliced = Uint8Array.from(a.idAuth);
    spliced.set(b.idAuth.subarray(0x40, 0x240), 0x40); // b's block signature, a's ID key
    expect(sevErrorOf(() => verifyIdBlock(a.idBlock, spliced)).code).toBe('bad-signature');
  });
});
