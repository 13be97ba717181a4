/**
 * Errors of the simulated SEV firmware. `status` mirrors the firmware status names of the SEV API
 * (ASPFW `sev_status_t`), so tests can assert the same failure a real LAUNCH_* command would give.
 */
export type SimFirmwareStatus =
  | 'INVALID_LENGTH'
  | 'INVALID_CERTIFICATE'
  | 'INVALID_PARAM'
  | 'INVALID_GUEST_STATE'
  | 'BAD_MEASUREMENT'
  | 'BAD_SIGNATURE'
  | 'POLICY_FAILURE'
  | 'UNSUPPORTED'
  /** Not a firmware status: the guest (OVMF / Linux efi_secret) would reject the decrypted secret table. */
  | 'GUEST_SECRET_TABLE_INVALID';

export class SimFirmwareError extends Error {
  constructor(
    readonly status: SimFirmwareStatus,
    message: string,
  ) {
    super(`${status}: ${message}`);
    this.name = 'SimFirmwareError';
  }
}

export function isSimFirmwareError(e: unknown): e is SimFirmwareError {
  return e instanceof SimFirmwareError;
}
