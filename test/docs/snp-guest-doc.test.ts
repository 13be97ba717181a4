/**
 * docs/snp-guest.md against the code: the resource path it shows is a valid one and the profile editor's
 * default for its VM id, its /kbs/v0 URLs follow from the base URL as the Host setup notes say, the
 * clevis-pin-trustee configuration uses the pin's field names, the KBS resource route (where built)
 * takes that path, and the openssl snippet, run against a TLS listener, prints the listener's fingerprint.
 */
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildHostSetup, kbsBaseUrl } from '../../app/host-setup';
import { LUKS_PASSPHRASE_GUID, ResourcePathSchema, VmProfileSchema } from '../../app/profile';
import { request, startHarness, type Harness } from '../helpers/listener-harness';

const doc = readFileSync(join(process.cwd(), 'docs/snp-guest.md'), 'utf8');
const VM = 'web-snp';
const BASE = 'https://owner.example:8470';

/** The shell blocks of the doc. */
const shellBlocks = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
const one = (re: RegExp, what: string): string => {
  const all = [...doc.matchAll(re)].map((m) => m[1]!);
  expect(all.length, what).toBeGreaterThan(0);
  expect(new Set(all).size, `${what}: one value throughout`).toBe(1);
  return all[0]!;
};

describe('docs/snp-guest.md', () => {
  const path = one(/get-resource --path ([A-Za-z0-9][\w.-]*\/[\w.-]+\/[\w.-]+)/g, 'trustee-attester --path');

  it('shows one resource path: valid, the editor default for the VM, the same in every command', async () => {
    expect(ResourcePathSchema.safeParse(path).success).toBe(true);
    expect(path).toBe(`default/luks/${VM}`);
    // The profile editor's default (renderer), where this build has it.
    // A computed specifier: the node type check does not compile the renderer's TSX.
    const editorModule = '../../renderer/src/screens/profile-editor';
    const editor = (await import(/* @vite-ignore */ editorModule)) as Record<string, unknown>;
    // The editor's default where this build has it (the SNP profile editor branch adds it).
    if (typeof editor.defaultResourcePath === 'function') {
      const made = (editor.defaultResourcePath as (id: string, kind: string) => string)(
        VM,
        'luks-passphrase',
      );
      expect(made).toBe(path);
    }
    const clevis = one(/clevis luks bind -d \S+ trustee \\\n\s+'([^']+)'/g, 'clevis config');
    const config = JSON.parse(clevis) as { servers: { url: string; cert: string }[]; path: string };
    // The pin's Config: servers[{url, cert}], path (latchset/clevis-pin-trustee lib/src/lib.rs).
    expect(Object.keys(config).sort()).toEqual(['path', 'servers']);
    expect(Object.keys(config.servers[0]!).sort()).toEqual(['cert', 'url']);
    expect(config.path).toBe(path);
    expect(config.servers[0]!.url).toBe(BASE);
    expect(one(/--url (https?:\/\/\S+)/g, 'trustee-attester --url')).toBe(BASE);
  });

  it('the /kbs/v0 URLs are the base URL plus the routes, as the Host setup notes give them', () => {
    expect(doc).toContain(`\`POST ${kbsBaseUrl(BASE)}/auth\``);
    expect(doc).toContain(`\`POST ${kbsBaseUrl(BASE)}/attest\``);
    expect(doc).toContain(`\`GET ${kbsBaseUrl(BASE)}/resource/${path}\``);
    const profile = VmProfileSchema.parse({
      id: VM,
      name: VM,
      scheme: 'amd-sev-snp',
      policy: 0x30000,
      cpuCounts: [4],
      cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
      firmware: { kind: 'digests', launchDigests: ['1'.repeat(96)] },
      secrets: [{ guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase', resource: path }],
      snp: {},
    });
    const notes = buildHostSetup({ profile, listenerUrl: BASE }).notes.join('\n');
    expect(notes).toContain(`${kbsBaseUrl(BASE)} (Trustee KBS protocol`);
    expect(notes).toContain(path);
  });

  describe('against a running listener', () => {
    let h: Harness | undefined;
    let plain: Harness | undefined;
    const dir = mkdtempSync(join(tmpdir(), 'snp-guest-doc-'));
    afterAll(async () => {
      await h?.close();
      await plain?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it.skipIf(spawnSync('openssl', ['version']).status !== 0)(
      "the openssl snippet fetches the listener's certificate and prints its fingerprint",
      async () => {
        h = await startHarness({ tls: true, trustSim: false });
        const port = new URL(h.svc.url).port;
        const snippet = shellBlocks.find((b) => b.startsWith('openssl s_client'));
        expect(snippet).toBeDefined();
        const script = snippet!.replaceAll('owner.example:8470', `127.0.0.1:${port}`);
        // Asynchronously: the listener answers the handshake from this same process.
        const r = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', script], {
          cwd: dir,
          encoding: 'utf8',
          timeout: 20_000,
        });
        const printed = /Fingerprint=([0-9A-F:]+)/i.exec(r.stdout)?.[1];
        expect(printed?.toUpperCase()).toBe(h.svc.tlsFingerprint!.toUpperCase());
        expect(readFileSync(join(dir, 'sev-attest-listener.pem'), 'utf8')).toBe(
          readFileSync(join(h.dataDir, 'tls-cert.pem'), 'utf8'),
        );
      },
    );

    it.skipIf(!existsSync(join(process.cwd(), 'server/listener/kbs-routes.ts')))(
      'the KBS resource route takes the path (401 without a session, in Trustee’s error shape, not 404)',
      async () => {
        plain = await startHarness({ trustSim: false });
        const r = await request(plain.svc.url, 'GET', `/kbs/v0/resource/${path}`, { token: null });
        expect(r.status).toBe(401);
        expect(r.json.type).toMatch(/^https:\/\/github\.com\/confidential-containers\/kbs\/errors\//);
      },
    );
  });
});
