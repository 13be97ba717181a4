import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../listener/server';
import { describeBytes, MAX_ARTIFACT_BYTES } from './owner-service';

describe('artifact size limits', () => {
  it('the owner may store a 256 MiB initrd and more (2 GiB); host-facing bodies stay small', () => {
    expect(MAX_ARTIFACT_BYTES).toBe(2 * 1024 ** 3);
    expect(MAX_ARTIFACT_BYTES).toBeGreaterThan(256 * 1024 ** 2);
    expect(DEFAULT_LIMITS.artifactBytes).toBe(MAX_ARTIFACT_BYTES);
    expect(DEFAULT_LIMITS.hostBodyBytes).toBe(64 * 1024);
    expect(DEFAULT_LIMITS.ownerBodyBytes).toBeLessThan(MAX_ARTIFACT_BYTES);
  });

  it('limits read as people read them, with the exact figure', () => {
    expect(describeBytes(MAX_ARTIFACT_BYTES)).toBe('2 GiB (2147483648 bytes)');
    expect(describeBytes(4 * 1024 * 1024)).toBe('4 MiB (4194304 bytes)');
    expect(describeBytes(1_000_000)).toBe('976.6 KiB (1000000 bytes)');
    expect(describeBytes(512)).toBe('512 bytes');
  });
});
