/**
 * The bundle routes inside the built CLI's `serve` (server/serve/serve.ts wires BundleService and
 * bundleRoutes into the listener): `GET /v1/vm/{vmid}/bundle` and `POST /v1/bundles` over real HTTP,
 * behind the owner token. With the memory secret store there is no signing key, so export answers 409
 * bundle-no-signing-key while import of a bundle signed by a key trusted with `bundle trust` works and the
 * imported VM launches and validates. When dbus-run-session and gnome-keyring exist, a second `serve`
 * runs inside scripts/with-keyring.sh after `bundle keygen`, and exports signed bundles for real.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildBundleBody,
  generateSigningKey,
  keyFingerprint,
  publicKeyOf,
  signBundle,
  verifyBundle,
  type BundleDocument,
} from '../../app/bundle/bundle';
import { prepareFirmware } from '../../app/digest/launch-digest';
import { VmProfileSchema, LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { toBase64 } from '../../app/sev/bytes';
import { FIRMWARE_PATH, hostFlow, MILAN, registerVm, request, tmpDir } from '../helpers/listener-harness';
import { buildCliPackage, serveArgs, startServe } from '../helpers/built-cli';

const HAVE_KEYRING_TOOLS =
  fs.existsSync('/usr/bin/dbus-run-session') && fs.existsSync('/usr/bin/gnome-keyring-daemon');
/** The built CLI, copied out of dist/ so another engineer's rebuild cannot remove it mid-test. */
let CLI = '';

beforeAll(() => {
  CLI = buildCliPackage('sev-bundle-cli-').entry;
}, 120_000);

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env };
  delete env.SEV_ATTEST_DATA_DIR;
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Starts `serve` (directly, or `command` wrapped around it) in its own process group, so the keyring
 * wrapper's daemons stop with it: `stop` sends the group SIGTERM and waits for the exit.
 */
async function serve(command: string, args: string[]) {
  const s = await startServe(command, args, { detached: true, timeoutMs: 30_000 });
  const stop = async () => {
    try {
      process.kill(-s.child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    await s.exited;
  };
  return { ...s, stop };
}

/** A signed SEV-ES bundle of the harness firmware (1-2 vCPUs, EPYC-Milan, both VMSA variants). */
async function signedBundle(secretKey: Uint8Array, id: string): Promise<BundleDocument> {
  const firmware = await prepareFirmware(FIRMWARE_PATH);
  const profile = VmProfileSchema.parse({
    id,
    name: `VM ${id}`,
    scheme: 'amd-sev-es',
    policy: 0x05,
    firmware: { kind: 'artifact', sha256: firmware.info.sha256, size: firmware.info.size },
    cpuCounts: [1, 2],
    cpuSignatures: [MILAN],
    vmsaVariants: ['legacy', 'kvm-init2'],
  });
  const body = buildBundleBody({ profile, firmware });
  return signBundle(body, secretKey);
}

describe('built CLI serve: bundle routes with the memory secret store', () => {
  it('GET bundle: 401 without the token, 404 unknown VM, 409 without a signing key; POST imports a trusted bundle that then validates', async () => {
    const dir = tmpDir('sev-bundle-serve-');
    const laptopKey = generateSigningKey();
    const laptopPublic = toBase64(publicKeyOf(laptopKey));
    const trusted = cli(['bundle', 'trust', laptopPublic, '--label', 'laptop', '--data-dir', dir]);
    expect(trusted.status, trusted.stderr).toBe(0);
    expect(trusted.stdout).toContain(keyFingerprint(publicKeyOf(laptopKey)));

    const s = await serve(process.execPath, [CLI, ...serveArgs(dir, 'memory')]);
    try {
      const svc = { svc: { url: s.url } } as Parameters<typeof registerVm>[0];
      expect((await registerVm(svc, { id: 'local', sevEs: true }, s.token)).status).toBe(200);

      const anonymous = await request(s.url, 'GET', '/v1/vm/local/bundle', { token: null });
      expect(anonymous.status).toBe(401);
      const unknown = await request(s.url, 'GET', '/v1/vm/nope/bundle', { token: s.token });
      expect(unknown.status).toBe(404);
      expect(unknown.json.error).toBe('unknown-vm');
      const noKey = await request(s.url, 'GET', '/v1/vm/local/bundle?cpus=1-2', { token: s.token });
      expect(noKey.status, noKey.text).toBe(409);
      expect(noKey.json.error).toBe('bundle-no-signing-key');
      const badSelection = await request(s.url, 'GET', '/v1/vm/local/bundle?cpus=0-2', { token: s.token });
      expect(badSelection.status).toBe(400);
      expect(badSelection.json.error).toBe('bundle-bad-selection');

      const doc = await signedBundle(laptopKey, 'imported');
      const posted = await request(s.url, 'POST', '/v1/bundles', {
        token: s.token,
        body: {
          bundle: doc,
          approval: 'auto',
          secrets: { type: 'luks-passphrase', passphrase: 'released after import' },
        },
      });
      expect(posted.status, posted.text).toBe(200);
      expect(posted.json.signer).toEqual({
        fingerprint: keyFingerprint(publicKeyOf(laptopKey)),
        label: 'laptop',
      });
      expect(posted.json.rows).toBe(4);
      expect(posted.json.vm['launch-digests']).toHaveLength(4);

      for (const vmsaVariant of ['legacy', 'kvm-init2'] as const) {
        const r = await hostFlow(svc, { vmId: 'imported', sevEs: true, cpus: 2, vmsaVariant });
        expect(r.validate?.status, r.validate?.text).toBe(200);
        expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('released after import');
      }

      const stranger = await signedBundle(generateSigningKey(), 'stranger');
      const refused = await request(s.url, 'POST', '/v1/bundles', { token: s.token, body: stranger });
      expect(refused.status).toBe(403);
      expect(refused.json.error).toBe('bundle-key-untrusted');
      const tampered = structuredClone(doc);
      tampered.body.rows[0]!.digest = '0'.repeat(64);
      const modified = await request(s.url, 'POST', '/v1/bundles', {
        token: s.token,
        body: { bundle: tampered, 'vm-id': 'tampered' },
      });
      expect(modified.status).toBe(422);
      expect(modified.json.error).toBe('bundle-signature-invalid');
      const list = await request(s.url, 'GET', '/v1/vm', { token: s.token });
      expect(list.json.vms.map((v: { id: string }) => v.id).sort()).toEqual(['imported', 'local']);
    } finally {
      await s.stop();
    }
  }, 60_000);
});

describe.skipIf(!HAVE_KEYRING_TOOLS)('built CLI serve: bundle export with a keychain signing key', () => {
  it('keygen, then serve exports signed bundles (native, csv) and imports its own bundle under a new id', async () => {
    const dir = tmpDir('sev-bundle-keyring-');
    // keygen and serve share one private D-Bus session and keyring.
    const script = `node ${CLI} bundle keygen --data-dir "$1" >"$1/key.txt" && shift && exec node ${CLI} "$@"`;
    const s = await serve('bash', [
      'scripts/with-keyring.sh',
      'bash',
      '-c',
      script,
      'bash',
      dir,
      ...serveArgs(dir, 'keychain'),
    ]);
    try {
      const key = fs.readFileSync(join(dir, 'key.txt'), 'utf8');
      const fingerprint = /^fingerprint (\S+)$/m.exec(key)![1]!;
      const publicKey = /^public-key (\S+)$/m.exec(key)![1]!;
      const svc = { svc: { url: s.url } } as Parameters<typeof registerVm>[0];
      expect((await registerVm(svc, { id: 'es', sevEs: true }, s.token)).status).toBe(200);

      const got = await request(
        s.url,
        'GET',
        '/v1/vm/es/bundle?cpus=1-4&cpu-signature=milan,genoa&vmsa-variant=both',
        { token: s.token },
      );
      expect(got.status, got.text).toBe(200);
      expect(got.headers['content-type']).toMatch(/^application\/json/);
      expect(got.headers['content-disposition']).toBe('attachment; filename="es.bundle.json"');
      const doc = got.json as BundleDocument;
      expect(doc.body.rows).toHaveLength(16);
      expect(doc.signature?.fingerprint).toBe(fingerprint);
      expect(verifyBundle(got.text, [{ fingerprint, publicKey }]).body.vm.id).toBe('es');

      const csv = await request(
        s.url,
        'GET',
        '/v1/vm/es/bundle?cpus=1&cpu-signature=milan&vmsa-variant=legacy&format=csv',
        { token: s.token },
      );
      expect(csv.status).toBe(200);
      expect(csv.headers['content-type']).toMatch(/^text\/csv/);
      const lines = csv.text.trimEnd().split('\r\n');
      expect(lines).toHaveLength(2);
      expect(lines[1]).toContain(doc.body.rows[0]!.digest);

      // keygen trusted its own key: the service imports its own bundle.
      const posted = await request(s.url, 'POST', '/v1/bundles', {
        token: s.token,
        body: { bundle: doc, 'vm-id': 'es-copy', approval: 'auto' },
      });
      expect(posted.status, posted.text).toBe(200);
      expect(posted.json.signer).toEqual({ fingerprint, label: "this owner's signing key" });
      expect(posted.json.vm['launch-digests']).toHaveLength(16);
    } finally {
      await s.stop();
    }
  }, 90_000);
});
