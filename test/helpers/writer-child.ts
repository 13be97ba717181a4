/**
 * The restart test's child: writes profiles (conf backend), audit events and, with USE_KEYRING=1,
 * keychain secrets as fast as it can until it is killed. Env: DATA_DIR, USE_KEYRING, SECRET_SERVICE.
 * Prints "ready <seq>" once its stores are open.
 */
import { join } from 'node:path';
import type { VmProfile } from '../../app/profile';
import { AuditLog } from '../../server/services/audit-log';
import { createConfBackend } from '../../server/services/kv-backend';
import { ProfileStore } from '../../server/services/profile-store';
import { KeytarSecretStore } from '../../server/services/secret-store';
import { RESTART_SLOTS, restartProfile, restartSecret } from './restart-profile';

async function main(): Promise<void> {
  const dir = process.env.DATA_DIR;
  if (!dir) throw new Error('DATA_DIR is required');
  const profiles = new ProfileStore({
    backend: createConfBackend<{ profiles: Record<string, VmProfile> }>({
      cwd: dir,
      configName: 'profiles',
      defaults: { profiles: {} },
    }),
  });
  // A small bound so compaction (temp file + rename) runs every ~10 events, under the kills too.
  const audit = AuditLog.open({ file: join(dir, 'audit.jsonl'), maxEntries: 20 });
  const secrets =
    process.env.USE_KEYRING === '1'
      ? new KeytarSecretStore({ service: process.env.SECRET_SERVICE ?? 'sev-attest-restart' })
      : undefined;
  // Generations continue from the log's seq: each generation is one audit event.
  let gen = audit.seq + 1;
  process.stdout.write(`ready ${audit.seq}\n`);
  for (;;) {
    const slot = gen % RESTART_SLOTS;
    profiles.put(restartProfile(slot, gen));
    if (secrets) await secrets.set(`restart/${slot}`, restartSecret(slot, gen));
    audit.append({ type: 'profile', result: 'info', vmId: `p-${slot}`, details: { gen } });
    gen++;
    // Give the audit writer a turn after every step (its write and fdatasync run between steps), so the
    // kills land between writes of both logs, not only inside the synchronous profile writes.
    await new Promise((r) => setImmediate(r));
  }
}

void main();
