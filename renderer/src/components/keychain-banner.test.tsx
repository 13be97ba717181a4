import { describe, expect, it } from 'vitest';
import { secretStoreLabel } from './keychain-banner';

describe('secretStoreLabel', () => {
  it('names each store the service can use, PostgreSQL included', () => {
    expect(secretStoreLabel({ kind: 'keychain' })).toBe('OS keychain');
    expect(secretStoreLabel({ kind: 'keychain', unavailable: 'locked' })).toBe('OS keychain (unavailable)');
    expect(secretStoreLabel({ kind: 'memory' })).toBe('memory only (nothing kept)');
    expect(secretStoreLabel({ kind: 'database' })).toBe('PostgreSQL (sealed with the service key)');
  });
});
