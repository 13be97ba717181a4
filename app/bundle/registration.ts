/**
 * A verified bundle as a VM registration: precomputed launch digests plus the bundle's policy, matrix,
 * kernel hashes, minimum API, builds and chip ids, checked by the same rules as a VM registered by hand.
 */
import { VmPutRequestSchema, describeZodError, vmBodyToProfileFields } from '../contract/rest';
import type { FirmwareSource, VmRegistration } from '../vm-registration';
import { bundleToVmBody, type BundleBody } from './bundle';
import { BundleError } from './errors';

/** The registration of `b` under `id` (bundle-invalid when the bundle cannot be registered). */
export function bundleRegistration(
  b: BundleBody,
  id: string,
  opts: { approval?: 'manual' | 'auto'; name?: string } = {},
): VmRegistration & { firmware: Extract<FirmwareSource, { kind: 'digests' }> } {
  const parsed = VmPutRequestSchema.safeParse(bundleToVmBody(b, opts));
  if (!parsed.success) {
    throw new BundleError(
      'bundle-invalid',
      `the bundle cannot be registered: ${describeZodError(parsed.error)}`,
    );
  }
  return {
    fields: vmBodyToProfileFields(id, parsed.data),
    firmware: { kind: 'digests', launchDigests: parsed.data['launch-digests']! },
  };
}
