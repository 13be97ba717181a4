/** The deterministic content the restart writer child stores, so the parent can check every byte of it. */
import { createHash } from 'node:crypto';

export const RESTART_SLOTS = 40;

/** The profile input for one slot at one generation (the store adds createdAt/updatedAt). */
export function restartProfile(slot: number, gen: number): Record<string, unknown> {
  return {
    id: `p-${slot}`,
    name: `slot ${slot} gen ${gen}`,
    scheme: gen % 2 === 0 ? 'amd-sev' : 'amd-sev-es',
    // Flag bits 0-5 and a minimum API in bits 16-23 vary with gen; reserved bits 6-15 stay zero.
    policy: (gen % 0x40) | ((Math.floor(gen / 0x40) & 0xff) << 16),
    cpuCounts: [1 + (gen % 64)],
    firmware: { kind: 'digests', launchDigests: [createHash('sha256').update(`gen ${gen}`).digest('hex')] },
    // A long field makes each write bigger, so kills land inside writes more often.
    cmdline: `console=ttyS0 gen=${gen} `.padEnd(2000, 'x'),
    secrets: [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', kind: 'luks-passphrase' }],
  };
}

/** The secret value for one slot at one generation: sha256 || gen (u32 LE). */
export function restartSecret(slot: number, gen: number): Uint8Array {
  const out = Buffer.alloc(36);
  createHash('sha256').update(`secret ${slot} ${gen}`).digest().copy(out);
  out.writeUInt32LE(gen, 32);
  return new Uint8Array(out);
}
