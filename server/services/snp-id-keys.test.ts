/**
 * SNP ID keys with the memory store: created on request, trusted by the profile, reused, replaced (the old
 * digest dropped); ID blocks sign the chosen row with the profile's policy and verify against the key
 * digest; hostile options are refused. The real-keychain path: snp-id-keys.keychain.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { fromBase64, fromHex, toHex } from '../../app/sev/bytes';
import { decodeIdBlock, verifyIdBlock } from '../../app/snp/id-block';
import { M, snpKeyService, snpTestProfile } from '../../test/helpers/snp-host-setup-fixtures';
import { InMemorySecretStore } from './secret-store';
import { BundleError } from '../../app/bundle/errors';
import { AUTHOR_KEY_ACCOUNT, idKeyAccount, SnpIdKeyService } from './snp-id-keys';

describe('SnpIdKeyService', () => {
  it('creates the VM ID key on request, trusts its digest, and keeps it on the next call', async () => {
    const secrets = new InMemorySecretStore();
    const { profiles, service } = snpKeyService(secrets);
    const before = await service.hostSetup('snp-vm', { row: 0 });
    expect(before.idBlock).toBeUndefined();
    expect(before.idBlockMissing).toMatch(/no ID key yet/);
    const r = await service.ensureKeys('snp-vm');
    expect(r.idKeyCreated).toBe(true);
    expect(r.accounts.idKey).toBe('snp/id-key/snp-vm');
    expect(await secrets.list()).toEqual([idKeyAccount('snp-vm')]);
    expect(profiles.get('snp-vm')!.snp!.trustedIdKeyDigests).toEqual([M('9'), r.idKeyDigest]);
    const again = await service.ensureKeys('snp-vm');
    expect(again).toMatchObject({ idKeyCreated: false, idKeyDigest: r.idKeyDigest });
    expect(profiles.get('snp-vm')!.snp!.trustedIdKeyDigests).toEqual([M('9'), r.idKeyDigest]);
  });

  it('signs the chosen row with the profile policy; the block verifies against the key digest', async () => {
    const { service } = snpKeyService(new InMemorySecretStore());
    const { idKeyDigest } = await service.ensureKeys('snp-vm');
    const many = await service.hostSetup('snp-vm');
    expect(many.rows.map((r) => r.measurement)).toEqual([M('1'), M('2'), M('3')]);
    expect(many.idBlock).toBeUndefined();
    expect(many.idBlockMissing).toMatch(/3 measurements: choose the row/);
    const s = await service.hostSetup('snp-vm', {
      row: 1,
      familyId: '0a'.repeat(16),
      imageId: '0b'.repeat(16),
      guestSvn: 7,
    });
    const b = s.idBlock!;
    expect(b.idKeyDigest).toBe(idKeyDigest);
    const v = verifyIdBlock(fromBase64(b.idBlockBase64), fromBase64(b.idAuthBase64), {
      idKeyDigest: fromHex(idKeyDigest),
    });
    expect(toHex(v.block.launchDigest)).toBe(M('2'));
    expect(v.block.policy).toBe(0x30000n);
    expect(toHex(v.block.familyId)).toBe('0a'.repeat(16));
    expect(toHex(v.block.imageId)).toBe('0b'.repeat(16));
    expect(v.block.guestSvn).toBe(7);
    expect(v.authorKeyDigest).toBeUndefined();
    // Another key's digest does not verify it.
    expect(() =>
      verifyIdBlock(fromBase64(b.idBlockBase64), fromBase64(b.idAuthBase64), {
        idKeyDigest: fromHex(M('9')),
      }),
    ).toThrow(/not the expected one/);
  });

  it('a single-row profile needs no row; the author key signs the ID key when asked', async () => {
    const secrets = new InMemorySecretStore();
    const { profiles, service } = snpKeyService(
      secrets,
      snpTestProfile({ firmware: { kind: 'digests', launchDigests: [M('5')] } }),
    );
    const keys = await service.ensureKeys('snp-vm', { authorKey: true });
    expect(keys.authorKeyCreated).toBe(true);
    expect(await secrets.list()).toEqual([AUTHOR_KEY_ACCOUNT, idKeyAccount('snp-vm')].sort());
    expect(profiles.get('snp-vm')!.snp!.trustedAuthorKeyDigests).toEqual([keys.authorKeyDigest]);
    const plain = await service.hostSetup('snp-vm');
    expect(decodeIdBlock(fromBase64(plain.idBlock!.idBlockBase64)).launchDigest).toEqual(fromHex(M('5')));
    expect(plain.idBlock!.authorKeyDigest).toBeUndefined();
    const authored = await service.hostSetup('snp-vm', { authorKey: true });
    expect(authored.idBlock!.authorKeyDigest).toBe(keys.authorKeyDigest);
    const v = verifyIdBlock(
      fromBase64(authored.idBlock!.idBlockBase64),
      fromBase64(authored.idBlock!.idAuthBase64),
      { idKeyDigest: fromHex(keys.idKeyDigest), authorKeyDigest: fromHex(keys.authorKeyDigest!) },
    );
    expect(toHex(v.authorKeyDigest!)).toBe(keys.authorKeyDigest);
  });

  it('replace makes a new ID key and the profile stops trusting the old one', async () => {
    const { profiles, service } = snpKeyService(new InMemorySecretStore());
    const first = await service.ensureKeys('snp-vm');
    const second = await service.ensureKeys('snp-vm', { replace: true });
    expect(second.idKeyDigest).not.toBe(first.idKeyDigest);
    expect(profiles.get('snp-vm')!.snp!.trustedIdKeyDigests).toEqual([M('9'), second.idKeyDigest]);
  });

  it('a firmware that cannot be measured leaves the fragment without an ID block and says why', async () => {
    const secrets = new InMemorySecretStore();
    const { profiles } = snpKeyService(secrets);
    const service = new SnpIdKeyService({
      profiles,
      secrets,
      measurements: () =>
        Promise.reject(
          new BundleError('bundle-export-unsupported', "snp-vm's firmware is not in the artifact store"),
        ),
    });
    await service.ensureKeys('snp-vm');
    const s = await service.hostSetup('snp-vm');
    expect(s.rows).toEqual([]);
    expect(s.idBlock).toBeUndefined();
    expect(s.idBlockMissing).toBe(
      "the expected measurements could not be computed (snp-vm's firmware is not in the artifact store)",
    );
    // A programming error is not swallowed.
    const broken = new SnpIdKeyService({
      profiles,
      secrets,
      measurements: () => Promise.reject(new TypeError('bug')),
    });
    await expect(broken.hostSetup('snp-vm')).rejects.toThrow('bug');
  });

  it('refuses a row the profile does not have, an SEV profile and an unknown VM', async () => {
    const { profiles, service } = snpKeyService(new InMemorySecretStore());
    await service.ensureKeys('snp-vm');
    await expect(service.hostSetup('snp-vm', { row: 3 })).rejects.toMatchObject({
      code: 'bad-request',
      message: expect.stringContaining('row 3 is not one of'),
    });
    profiles.put({
      ...snpTestProfile({ id: 'sev' }),
      scheme: 'amd-sev',
      policy: 1,
      snp: undefined,
      firmware: { kind: 'digests', launchDigests: ['a'.repeat(64)] },
    });
    await expect(service.ensureKeys('sev')).rejects.toMatchObject({ code: 'bad-request' });
    await expect(service.hostSetup('nope')).rejects.toMatchObject({ code: 'unknown-vm' });
  });
});
