import { describe, expect, it } from 'vitest';
import { describeBytes } from './owner-service';

describe('describeBytes', () => {
  it('limits read as people read them, with the exact figure', () => {
    expect(describeBytes(2 * 1024 ** 3)).toBe('2 GiB (2147483648 bytes)');
    expect(describeBytes(4 * 1024 * 1024)).toBe('4 MiB (4194304 bytes)');
    expect(describeBytes(1_000_000)).toBe('976.6 KiB (1000000 bytes)');
    expect(describeBytes(512)).toBe('512 bytes');
  });
});
