/**
 * SNP ID keys in a real OS keychain (Secret Service via gnome-keyring): created by one service instance,
 * used by another to sign an ID block that verifies against the digest the profile trusts; the private key
 * is in the keychain and in no file of the data directory. Runs under `bash scripts/with-keyring.sh`
 * (as .ci/run does); skipped otherwise.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { VmProfile } from '../../app/profile';
import { fromBase64, fromHex, toBase64, toHex } from '../../app/sev/bytes';
import { verifyIdBlock } from '../../app/snp/id-block';
import { snpTestProfile } from '../../test/helpers/snp-host-setup-fixtures';
import { createConfBackend } from './kv-backend';
import { ProfileStore } from './profile-store';
import { KeytarSecretStore } from './secret-store';
import { idKeyAccount, SnpIdKeyService, snpMeasurementRows } from './snp-id-keys';

const HAVE_KEYRING = process.env.SEV_ATTEST_TEST_KEYRING === '1';

describe.skipIf(!HAVE_KEYRING)('SNP ID keys in a real Secret Service (scripts/with-keyring.sh)', () => {
  const service = `sev-attest-snp-idkey-test-${process.pid}`;
  const dir = fs.mkdtempSync(join(tmpdir(), 'snp-idkey-'));
  const make = () => {
    const profiles = new ProfileStore({
      backend: createConfBackend({
        cwd: dir,
        configName: 'profiles',
        defaults: { profiles: {} as Record<string, VmProfile> },
      }),
    });
    return {
      profiles,
      keys: new SnpIdKeyService({
        profiles,
        secrets: new KeytarSecretStore({ service }),
        measurements: (p) => snpMeasurementRows(p, () => Promise.reject(new Error('no firmware'))),
      }),
    };
  };
  afterAll(async () => {
    await new KeytarSecretStore({ service }).delete(idKeyAccount('snp-vm'));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keygen in one instance, an ID block from another that verifies, no key bytes on disk', async () => {
    const a = make();
    a.profiles.put(snpTestProfile());
    const created = await a.keys.ensureKeys('snp-vm');
    expect(created.idKeyCreated).toBe(true);
    const b = make();
    expect(b.profiles.get('snp-vm')!.snp!.trustedIdKeyDigests).toContain(created.idKeyDigest);
    const s = await b.keys.hostSetup('snp-vm', { row: 2 });
    const v = verifyIdBlock(fromBase64(s.idBlock!.idBlockBase64), fromBase64(s.idBlock!.idAuthBase64), {
      idKeyDigest: fromHex(created.idKeyDigest),
    });
    expect(toHex(v.block.launchDigest)).toBe('3'.repeat(96));
    const der = await new KeytarSecretStore({ service }).get(idKeyAccount('snp-vm'));
    expect(der!.length).toBeGreaterThan(100);
    // The private scalar is the 48 bytes after the PKCS#8/SEC1 header; no form of the key is in any file.
    const forms = [toHex(der!), toBase64(der!), Buffer.from(der!).toString('latin1')];
    for (const name of fs.readdirSync(dir)) {
      const text = fs.readFileSync(join(dir, name), 'latin1');
      for (const f of forms) expect(text.includes(f), name).toBe(false);
    }
  });
});
