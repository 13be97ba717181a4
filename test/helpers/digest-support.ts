/**
 * Test support for the digest tests (not used by the product): the launch measurement HMAC (docs/protocol.md §5)
 * computed directly with node:crypto, and a runner for libvirt's virt-qemu-sev-validate.
 */
import { createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const LIBVIRT_VALIDATOR = '/usr/bin/virt-qemu-sev-validate';
export const SYSTEM_PYTHON = '/usr/bin/python3';

/** measure = HMAC-SHA256(TIK, 0x04 || major || minor || build || policy LE || digest || mnonce). */
export function launchMeasure(p: {
  tik: Uint8Array;
  apiMajor: number;
  apiMinor: number;
  build: number;
  policy: number;
  digest: Uint8Array;
  mnonce: Uint8Array;
}): Uint8Array {
  const policy = Buffer.alloc(4);
  policy.writeUInt32LE(p.policy);
  return new Uint8Array(
    createHmac('sha256', p.tik)
      .update(Uint8Array.of(0x04, p.apiMajor, p.apiMinor, p.build))
      .update(policy)
      .update(p.digest)
      .update(p.mnonce)
      .digest(),
  );
}

/** Why the libvirt validator cannot run here, or undefined when it can. */
export function libvirtValidatorMissing(): string | undefined {
  if (!existsSync(LIBVIRT_VALIDATOR))
    return `${LIBVIRT_VALIDATOR} is not installed (Debian libvirt-clients-qemu)`;
  if (!existsSync(SYSTEM_PYTHON)) return `${SYSTEM_PYTHON} is missing`;
  return undefined;
}

/** Runs the validator with these arguments; returns its exit code and output. */
export function runLibvirtValidator(args: string[]): {
  status: number | null;
  stdout: string;
  stderr: string;
} {
  const r = spawnSync(SYSTEM_PYTHON, [LIBVIRT_VALIDATOR, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
