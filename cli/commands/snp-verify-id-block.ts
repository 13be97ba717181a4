/** `sev-attest snp verify-id-block`: checks an ID block and ID auth, e.g. copied from a libvirt domain XML. */
import { parseArgs } from 'node:util';
import { verifyIdBlock } from '../../app/snp/id-block';
import { fromBase64, toHex } from '../../app/sev/bytes';
import { CliError, type CliCommand, type CliIo } from '../io';
import { parseHexOption, parseIntOption, U64_MAX } from './snp-common';

const usage = `usage: sev-attest snp verify-id-block --id-block B64 --id-auth B64 [options]

Verifies an SNP ID block and ID auth (base64, as in libvirt's <idBlock>/<idAuth>): the ID key's signature
over the block and the author key's signature over the ID key. Prints the block's fields and the two key
digests (what attestation reports carry as ID_KEY_DIGEST and AUTHOR_KEY_DIGEST). Exit 0 when everything
holds, 1 when a signature, key or expected value does not.

  --id-block B64            the 96-byte ID block
  --id-auth B64             the 4096-byte ID auth
  --id-key-digest HEX       the ID key must be this one (SHA-384 of its public key structure)
  --author-key-digest HEX   the author key must be this one
  --measurement HEX         the block must carry this launch digest
  --policy P                the block must carry this guest policy
  --json                    print the result as JSON
`;

const options = {
  'id-block': { type: 'string' },
  'id-auth': { type: 'string' },
  'id-key-digest': { type: 'string' },
  'author-key-digest': { type: 'string' },
  measurement: { type: 'string' },
  policy: { type: 'string' },
  json: { type: 'boolean' },
} as const;

function base64Option(option: string, value: string): Uint8Array {
  try {
    return fromBase64(value);
  } catch {
    throw new CliError(
      `--${option} must be standard base64, got '${value.slice(0, 40)}${value.length > 40 ? '…' : ''}'`,
    );
  }
}

export const snpVerifyIdBlockCommand: CliCommand = {
  name: 'verify-id-block',
  summary: 'verify an ID block and ID auth (signatures, key digests)',
  usage,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values: v, positionals } = parseArgs({
      args: argv,
      options,
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length) throw new CliError(`unexpected argument '${positionals[0]}'`);
    if (v['id-block'] === undefined) throw new CliError('--id-block is required');
    if (v['id-auth'] === undefined) throw new CliError('--id-auth is required');
    const block = base64Option('id-block', v['id-block']);
    const auth = base64Option('id-auth', v['id-auth']);
    const expected = {
      ...(v['id-key-digest'] !== undefined
        ? { idKeyDigest: parseHexOption('id-key-digest', v['id-key-digest'], 48) }
        : {}),
      ...(v['author-key-digest'] !== undefined
        ? { authorKeyDigest: parseHexOption('author-key-digest', v['author-key-digest'], 48) }
        : {}),
    };
    const measurement =
      v.measurement === undefined ? undefined : parseHexOption('measurement', v.measurement, 48);
    const policy = v.policy === undefined ? undefined : parseIntOption('policy', v.policy, U64_MAX);

    const r = verifyIdBlock(block, auth, expected);
    const problems: string[] = [];
    if (measurement && toHex(measurement) !== toHex(r.block.launchDigest)) {
      problems.push(
        `the block's launch digest ${toHex(r.block.launchDigest)} is not the expected ${toHex(measurement)}`,
      );
    }
    if (policy !== undefined && policy !== r.block.policy) {
      problems.push(
        `the block's policy 0x${r.block.policy.toString(16)} is not the expected 0x${policy.toString(16)}`,
      );
    }
    const result = {
      ok: problems.length === 0,
      launchDigest: toHex(r.block.launchDigest),
      familyId: toHex(r.block.familyId),
      imageId: toHex(r.block.imageId),
      guestSvn: r.block.guestSvn,
      policy: '0x' + r.block.policy.toString(16),
      idKeyDigest: toHex(r.idKeyDigest),
      authorKeyDigest: r.authorKeyDigest ? toHex(r.authorKeyDigest) : null,
      problems,
    };
    if (v.json) io.out(JSON.stringify(result, null, 2) + '\n');
    else {
      const lines = [
        `signatures: valid (ID key over the block${r.authorKeyDigest ? ', author key over the ID key' : '; no author key'})`,
        `launchDigest: ${result.launchDigest}`,
        `policy: ${result.policy}`,
        `guestSvn: ${result.guestSvn}`,
        `familyId: ${result.familyId}`,
        `imageId: ${result.imageId}`,
        `idKeyDigest: ${result.idKeyDigest}`,
        `authorKeyDigest: ${result.authorKeyDigest ?? '(none)'}`,
        ...problems.map((p) => `MISMATCH: ${p}`),
      ];
      io.out(lines.join('\n') + '\n');
    }
    return problems.length === 0 ? 0 : 1;
  },
};
