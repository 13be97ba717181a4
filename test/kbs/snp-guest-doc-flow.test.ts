/**
 * docs/snp-guest.md end to end with the simulated SNP platform and guest (app/sim): the owner makes an
 * SNP profile with the doc's resource path, creates the VM's ID key and takes the host setup's ID block
 * over REST; the simulated firmware launches the guest as the real one would with that block (its
 * measurement and policy, the ID key digest in every report); the guest, pinning the listener's TLS
 * certificate from DIR/tls-cert.pem as the doc says, attests at /kbs/v0 and receives the LUKS key.
 * A guest launched without the owner's ID block (another image) is refused and gets nothing.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostSetup, SnpKeysResult } from '../../app/host-setup';
import { LUKS_PASSPHRASE_GUID, secretAccount, VmProfileSchema } from '../../app/profile';
import { fromBase64 } from '../../app/sev/bytes';
import { verifyIdBlock } from '../../app/snp/id-block';
import { SnpKdsClient } from '../../app/snp/kds';
import { DEFAULT_SNP_POLICY, sha384, SimulatedSnpFirmware } from '../../app/sim/snp-firmware';
import type { SnpKdsStandIn } from '../../app/sim/snp-kds-stand-in';
import { KbsClientError, SnpGuestClient } from '../../app/sim/snp-guest';
import { startService, type RunningService } from '../../server/serve/serve';
import { InMemorySecretStore } from '../../server/services/secret-store';
import { OWNER_TOKEN } from '../helpers/http';

const doc = fs.readFileSync(join(process.cwd(), 'docs/snp-guest.md'), 'utf8');
const PATH = /get-resource --path ([A-Za-z0-9][\w.-]*\/[\w.-]+\/[\w.-]+)/.exec(doc)![1]!;
const VM = 'web-snp';
const IMAGE = sha384('web-snp guest image');
const HOST_DATA = new Uint8Array(32).fill(0x5a);
const PASSPHRASE = `luks passphrase ${randomBytes(8).toString('hex')}`;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

let fw: SimulatedSnpFirmware;
let kds: SnpKdsStandIn & { url: string };
let svc: RunningService;
let dataDir: string;
const clients: SnpGuestClient[] = [];

/** The owner REST API of the TLS listener, trusting its own certificate. */
async function owner(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const ca = fs.readFileSync(join(dataDir, 'tls-cert.pem'));
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      new URL(path, svc.url),
      {
        method,
        ca,
        headers: {
          authorization: `Bearer ${OWNER_TOKEN}`,
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString() || 'null') }),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

beforeAll(async () => {
  fw = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
  kds = await fw.kdsStandIn();
  dataDir = fs.mkdtempSync(join(os.tmpdir(), 'snp-doc-flow-'));
  svc = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    tls: true,
    secretStore: new InMemorySecretStore(),
    ownerToken: OWNER_TOKEN,
    rateLimit: false,
    kdsUrl: kds.url,
    kbs: {
      keys: new SnpKdsClient({ baseUrl: kds.url, maxAttempts: 1, timeoutMs: 5000 }),
      trust: fw.trustStore(),
      approvalWaitSeconds: 20,
    },
  });
  svc.profiles.put(
    VmProfileSchema.parse({
      id: VM,
      name: 'web (SNP)',
      scheme: 'amd-sev-snp',
      policy: Number(DEFAULT_SNP_POLICY),
      cpuCounts: [1],
      firmware: { kind: 'digests', launchDigests: [hex(IMAGE)] },
      approval: 'auto',
      secrets: [{ guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase', resource: PATH }],
      snp: { hostData: hex(HOST_DATA), minimumTcb: { ...fw.tcb } },
    }),
  );
  await svc.secretStore.set(secretAccount(VM, LUKS_PASSPHRASE_GUID), Buffer.from(PASSPHRASE));
}, 60_000);

afterAll(async () => {
  clients.forEach((c) => c.close());
  await svc?.close();
  await kds?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('the flow of docs/snp-guest.md with a simulated SNP guest', () => {
  it('ID key and block from host setup, a launch with that block, the pinned certificate: the guest gets its key', async () => {
    expect(PATH).toBe(`default/luks/${VM}`);
    const keys = await owner('POST', `/v1/vm/${VM}/snp-keys`, {});
    expect(keys.status).toBe(200);
    const k = keys.json as SnpKeysResult;
    const setup = await owner('GET', `/v1/vm/${VM}/host-setup`);
    expect(setup.status).toBe(200);
    const s = setup.json as HostSetup;
    const block = s.snp!.idBlock!;
    expect(s.domainXml).toContain(`<idBlock>${block.idBlockBase64}</idBlock>`);
    // What the firmware does at SNP_LAUNCH_FINISH: check the block, then report its key's digest.
    const v = verifyIdBlock(fromBase64(block.idBlockBase64), fromBase64(block.idAuthBase64));
    expect(hex(v.idKeyDigest)).toBe(k.idKeyDigest);
    expect(hex(v.block.launchDigest)).toBe(hex(IMAGE));
    const launched = fw.launch({
      measurement: v.block.launchDigest,
      policy: v.block.policy,
      hostData: HOST_DATA,
      idKeyDigest: v.idKeyDigest,
    });
    const pem = fs.readFileSync(join(dataDir, 'tls-cert.pem'), 'utf8');
    const c = new SnpGuestClient({
      baseUrl: svc.url,
      guest: launched,
      handshakeAttempts: 1,
      tls: { ca: pem, pinnedSha256: svc.tlsFingerprint! },
    });
    clients.push(c);
    expect(Buffer.from(await c.getResource(PATH)).toString()).toBe(PASSPHRASE);
  });

  it('the profile trusting only the ID key: another image signed by it passes, an unsigned one is refused', async () => {
    const p = svc.profiles.get(VM)!;
    const { createdAt: _c, updatedAt: _u, revision: _r, ...rest } = p;
    svc.profiles.put({ ...rest, firmware: { kind: 'digests', launchDigests: [] } });
    const keyDigest = Buffer.from(p.snp!.trustedIdKeyDigests[0]!, 'hex');
    const pem = fs.readFileSync(join(dataDir, 'tls-cert.pem'), 'utf8');
    const client = (idKeyDigest?: Uint8Array) => {
      const c = new SnpGuestClient({
        baseUrl: svc.url,
        guest: fw.launch({
          measurement: sha384('a newer image'),
          policy: DEFAULT_SNP_POLICY,
          hostData: HOST_DATA,
          ...(idKeyDigest ? { idKeyDigest } : {}),
        }),
        handshakeAttempts: 1,
        tls: { ca: pem, pinnedSha256: svc.tlsFingerprint! },
      });
      clients.push(c);
      return c;
    };
    expect(Buffer.from(await client(keyDigest).getResource(PATH)).toString()).toBe(PASSPHRASE);
    const refused = await client()
      .getResource(PATH)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(refused).toBeInstanceOf(KbsClientError);
  });
});
