/**
 * The bundle signing key in a real OS keychain (Secret Service via gnome-keyring): created by one store
 * instance, read back by another, signs a bundle that verifies. Runs under `bash scripts/with-keyring.sh`
 * (as .ci/run does); skipped otherwise.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { buildBundleBody, keyFingerprint, publicKeyOf, verifyBundle } from '../../app/bundle/bundle';
import { prepareFirmware } from '../../app/digest/launch-digest';
import { fromBase64 } from '../../app/sev/bytes';
import { BundleService, SIGNING_KEY_ACCOUNT } from './bundle-service';
import { createMemoryBackend } from './kv-backend';
import { ProfileStore } from './profile-store';
import { KeytarSecretStore } from './secret-store';
import { TrustedKeyStore } from './trusted-keys';

const HAVE_KEYRING = process.env.SEV_ATTEST_TEST_KEYRING === '1';
const FIRMWARE = 'test/fixtures/vectors/virtee-sev/ovmf_AmdSev_suffix.bin';

describe.skipIf(!HAVE_KEYRING)(
  'bundle signing key in a real Secret Service (scripts/with-keyring.sh)',
  () => {
    const service = `sev-attest-bundle-test-${process.pid}`;
    const make = () =>
      new BundleService({
        profiles: new ProfileStore({ backend: createMemoryBackend({ profiles: {} }) }),
        secrets: new KeytarSecretStore({ service }),
        trustedKeys: new TrustedKeyStore(createMemoryBackend({ keys: [] })),
      });
    afterAll(async () => {
      await new KeytarSecretStore({ service }).delete(SIGNING_KEY_ACCOUNT);
    });

    it('keygen in one instance, the same key from another, and a signature that verifies', async () => {
      const created = await make().generateSigningKey();
      expect(created.created).toBe(true);
      const again = make();
      const info = await again.signingKey();
      expect(info?.fingerprint).toBe(created.fingerprint);
      expect(keyFingerprint(fromBase64(info!.publicKey))).toBe(created.fingerprint);
      const fw = await prepareFirmware(FIRMWARE);
      const body = buildBundleBody({
        profile: {
          id: 'k',
          name: 'k',
          scheme: 'amd-sev',
          policy: 1,
          cpuCounts: [1],
          cpuSignatures: [],
          vmsaVariants: ['legacy'],
          firmware: { kind: 'artifact', sha256: fw.info.sha256, size: fw.info.size },
          approval: 'manual',
          secrets: [],
        },
        firmware: fw,
      });
      const doc = await again.sign(body);
      expect(verifyBundle(doc, [{ fingerprint: created.fingerprint }]).signer.fingerprint).toBe(
        created.fingerprint,
      );
      const raw = await new KeytarSecretStore({ service }).get(SIGNING_KEY_ACCOUNT);
      expect(raw).toHaveLength(32);
      expect(keyFingerprint(publicKeyOf(raw!))).toBe(created.fingerprint);
    });
  },
);
