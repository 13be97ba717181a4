/**
 * The built CLI: `node sev-attest.mjs serve` (a copy of dist/) on 127.0.0.1:0 runs a whole flow, exits 0 on SIGTERM,
 * and after a kill -9 in the middle of owner writes restarts with its profiles and audit log intact.
 * With SEV_ATTEST_TEST_KEYRING=1 (scripts/with-keyring.sh) the same runs use the real Secret Service
 * and the secrets survive the kill too.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { AuditLog } from '../../server/services/audit-log';
import { hostFlow, registerVm, request, tmpDir } from '../helpers/listener-harness';
import { buildCliPackage, serveArgs, startServe } from '../helpers/built-cli';

const KEYRING = process.env.SEV_ATTEST_TEST_KEYRING === '1';

/** The built CLI, copied out of dist/ so another engineer's rebuild cannot remove it mid-test. */
let CLI = '';

beforeAll(() => {
  CLI = buildCliPackage('sev-cli-pkg-').entry;
}, 120_000);

/** The built CLI's `serve` on dataDir, once it has printed its port and token file. */
const serve = (dataDir: string, store: 'memory' | 'keychain') =>
  startServe(process.execPath, [CLI, ...serveArgs(dataDir, store)]);

const store = KEYRING ? 'keychain' : 'memory';

describe(`built CLI serve (${store} secret store)`, () => {
  it('prints its port and token file, runs a flow, exits 0 on SIGTERM', async () => {
    const dir = tmpDir('sev-cli-');
    const s = await serve(dir, store);
    try {
      expect(s.stdout()).toMatch(/^listening http:\/\/127\.0\.0\.1:\d+$/m);
      expect(fs.statSync(s.tokenFile).mode & 0o777).toBe(0o600);
      const svc = { svc: { url: s.url } } as Parameters<typeof registerVm>[0];
      expect((await registerVm(svc, { id: 'cli-vm', passphrase: 'from the cli' }, s.token)).status).toBe(200);
      const r = await hostFlow(svc, { vmId: 'cli-vm' });
      expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('from the cli');
    } finally {
      s.child.kill('SIGTERM');
    }
    expect(await s.exited).toEqual({ code: 0, signal: null });
  });

  it('kill -9 during owner writes: profiles and the audit log survive, the service restarts and serves', async () => {
    const dir = tmpDir('sev-kill-');
    const s = await serve(dir, store);
    const svc = { svc: { url: s.url } } as Parameters<typeof registerVm>[0];
    const acked: string[] = [];
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const id = `vm-${i}`;
        try {
          const r = await registerVm(svc, { id, passphrase: `secret ${i}` }, s.token);
          if (r.status === 200) acked.push(id);
        } catch {
          return; // the process died mid-request
        }
      }
    })();
    while (acked.length < 5) await new Promise((r) => setTimeout(r, 20));
    s.child.kill('SIGKILL');
    stop = true;
    await writer;
    expect((await s.exited).signal).toBe('SIGKILL');

    const audit = AuditLog.open({ file: join(dir, 'audit.log') });
    expect(audit.openReport.invalidLines).toBe(0);
    const profileEvents = audit.list({ types: ['profile'] }).map((e) => e.vmId);
    audit.close();
    for (const id of acked) expect(profileEvents).toContain(id);

    const again = await serve(dir, store);
    try {
      expect(again.token).toBe(s.token);
      const list = await request(again.url, 'GET', '/v1/vm', { token: again.token });
      const ids = list.json.vms.map((v: { id: string }) => v.id);
      for (const id of acked) expect(ids).toContain(id);
      const first = acked[0]!;
      const r = await hostFlow({ svc: { url: again.url } } as Parameters<typeof hostFlow>[0], {
        vmId: first,
      });
      if (KEYRING) {
        // The keychain kept the secret across the kill.
        expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('secret 0');
      } else {
        // The memory store keeps nothing: the release is refused, never faked.
        expect(r.validate?.json.error).toBe('denied');
      }
    } finally {
      again.child.kill('SIGTERM');
    }
    expect((await again.exited).code).toBe(0);
  });
});
