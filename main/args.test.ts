import { describe, expect, it } from 'vitest';
import { secretStoreKind } from './args';

describe('desktop app options', () => {
  it('reads --secret-store from argv (npm run app -- --secret-store memory)', () => {
    expect(secretStoreKind(['/electron', '.', '--secret-store', 'memory'])).toBe('memory');
    expect(secretStoreKind(['/electron', '.', '--secret-store=memory'])).toBe('memory');
    expect(secretStoreKind(['/electron', '.'], { SEV_ATTEST_SECRET_STORE: 'memory' })).toBe('memory');
    expect(secretStoreKind(['/electron', '.'])).toBe('keychain');
    expect(() => secretStoreKind(['.', '--secret-store', 'disk'])).toThrow(/keychain or memory/);
  });
});
