/** `sev-attest snp id-block`: builds and signs an SNP ID block and ID auth (docs/protocol.md §14). */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createIdBlock, loadP384PrivateKeyPem } from '../../app/snp/id-block';
import { toHex } from '../../app/sev/bytes';
import { CliError, type CliCommand, type CliIo } from '../io';
import { inputFile, parseHexOption, parseIntOption, U32_MAX, U64_MAX } from './snp-common';

const usage = `usage: sev-attest snp id-block --measurement HEX --policy P --id-key FILE --author-key FILE [options]

Builds the ID block for an expected launch digest and guest policy, signs it with the ID key, signs the ID
key with the author key, and prints the base64 ID block and ID auth that libvirt's <idBlock>/<idAuth> (QEMU
id-block/id-auth) take, with the SHA-384 key digests attestation reports carry (ID_KEY_DIGEST,
AUTHOR_KEY_DIGEST). The firmware then refuses to launch a guest whose digest or policy differs.

  --measurement HEX   the expected launch digest (96 hex digits; see 'sev-attest snp digest')
  --policy P          the guest policy (u64, decimal or 0x hex; e.g. 0x30000), exactly as launched
  --id-key FILE       ID private key, P-384, PEM (SEC1 or PKCS#8, unencrypted)
  --author-key FILE   author private key, P-384, PEM
  --family-id HEX     16 bytes (32 hex digits), default zeros
  --image-id HEX      16 bytes (32 hex digits), default zeros
  --svn N             guest SVN (u32), default 0
  --json              print {"idBlock", "idAuth", "idKeyDigest", "authorKeyDigest"}
`;

const options = {
  measurement: { type: 'string' },
  policy: { type: 'string' },
  'id-key': { type: 'string' },
  'author-key': { type: 'string' },
  'family-id': { type: 'string' },
  'image-id': { type: 'string' },
  svn: { type: 'string' },
  json: { type: 'boolean' },
} as const;

// Bit 17 of an SNP guest policy is reserved and must be one: the firmware refuses a policy without it.
const POLICY_RESERVED_ONE = 1n << 17n;

export const snpIdBlockCommand: CliCommand = {
  name: 'id-block',
  summary: 'build and sign an ID block and ID auth (base64 for libvirt)',
  usage,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values: v, positionals } = parseArgs({
      args: argv,
      options,
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length) throw new CliError(`unexpected argument '${positionals[0]}'`);
    for (const required of ['measurement', 'policy', 'id-key', 'author-key'] as const) {
      if (v[required] === undefined) throw new CliError(`--${required} is required`);
    }
    const launchDigest = parseHexOption('measurement', v.measurement!, 48);
    const policy = parseIntOption('policy', v.policy!, U64_MAX);
    if ((policy & POLICY_RESERVED_ONE) === 0n) {
      throw new CliError(
        `--policy 0x${policy.toString(16)} lacks bit 17, which SNP requires to be set (e.g. 0x30000)`,
      );
    }
    const fields = {
      launchDigest,
      policy,
      guestSvn: v.svn === undefined ? 0 : Number(parseIntOption('svn', v.svn, U32_MAX)),
      ...(v['family-id'] !== undefined ? { familyId: parseHexOption('family-id', v['family-id'], 16) } : {}),
      ...(v['image-id'] !== undefined ? { imageId: parseHexOption('image-id', v['image-id'], 16) } : {}),
    };
    const idKey = loadP384PrivateKeyPem(
      await readFile(await inputFile('id-key', v['id-key']!, io.cwd)),
      'ID key',
    );
    const authorKey = loadP384PrivateKeyPem(
      await readFile(await inputFile('author-key', v['author-key']!, io.cwd)),
      'author key',
    );
    const r = createIdBlock(fields, idKey, authorKey);
    const out = {
      idBlock: r.idBlockBase64,
      idAuth: r.idAuthBase64,
      idKeyDigest: toHex(r.idKeyDigest),
      authorKeyDigest: toHex(r.authorKeyDigest!),
    };
    if (v.json) io.out(JSON.stringify(out, null, 2) + '\n');
    else {
      io.out(
        `idBlock: ${out.idBlock}\nidAuth: ${out.idAuth}\nidKeyDigest: ${out.idKeyDigest}\nauthorKeyDigest: ${out.authorKeyDigest}\n`,
      );
    }
    return 0;
  },
};
