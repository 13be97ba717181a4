/**
 * The audit log's group commit as the listener sees it: a released secret is on disk before the host
 * gets it, concurrent flows share fdatasyncs, and a log that cannot be written refuses the release.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hostFlow, registerVm, startHarness, type Harness } from '../helpers/listener-harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  if (h) fs.rmSync(h.dataDir, { recursive: true, force: true });
  h = undefined;
});

function fileEvents(dataDir: string): Array<{ seq: number; type: string; connection?: string }> {
  return fs
    .readFileSync(join(dataDir, 'audit.log'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

describe('audit durability through the listener', () => {
  it('8 concurrent flows: each finds its secret-release event in the file when the secret arrives', async () => {
    h = await startHarness();
    expect((await registerVm(h, { id: 'vm1', passphrase: 'durable one' })).status).toBe(200);
    const dataDir = h.dataDir;
    const flows = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const r = await hostFlow(h!, { vmId: 'vm1' });
        // Read as soon as the answer arrived (the 500 test below shows the release waits for the flush).
        const released = fileEvents(dataDir).filter((e) => e.type === 'secret-release');
        return { r, released };
      }),
    );
    for (const { r, released } of flows) {
      expect(r.validate?.status).toBe(200);
      expect([...r.secret!.values()]).toEqual(['durable one']);
      expect(released.map((e) => e.connection)).toContain(r.launch.json.connection);
    }
    const seqs = fileEvents(dataDir).map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
  });

  it('a log that cannot be written refuses the release: 500 internal, no secret', async () => {
    h = await startHarness();
    expect((await registerVm(h, { id: 'vm1' })).status).toBe(200);
    h.svc.audit.appendDurable = () => Promise.reject(new Error('disk gone'));
    const r = await hostFlow(h, { vmId: 'vm1' });
    expect(r.launch.status).toBe(200);
    expect(r.validate?.status).toBe(500);
    expect(r.validate?.json).toMatchObject({ error: 'internal' });
    expect(r.validate?.json['secret-table']).toBeUndefined();
    expect(r.secret).toBeUndefined();
  });
});
