/**
 * Says when the OS keychain cannot be used: what is missing and the exact fix. Shown above every screen
 * so a newcomer learns it before a save fails; the first-run demo still runs (its passphrase in memory).
 */
import type { AppInfo } from '../../../app/contract/ipc';

/** The sidebar's one-line description of where secrets go. */
export function secretStoreLabel(store: AppInfo['secretStore']): string {
  if (store.kind === 'memory') return 'memory only (nothing kept)';
  if (store.kind === 'database') return 'PostgreSQL (sealed with the service key)';
  return store.unavailable ? 'OS keychain (unavailable)' : 'OS keychain';
}

export function KeychainBanner({ info }: { info: AppInfo }) {
  const problem = info.secretStore.kind === 'keychain' ? info.secretStore.unavailable : undefined;
  if (!problem) return null;
  const restart =
    info.mode === 'desktop'
      ? 'npm run app -- --secret-store memory'
      : 'sev-attest serve --ui --secret-store memory';
  return (
    <section className="banner warning" aria-labelledby="keychain-banner-title" data-testid="keychain-banner">
      <h2 id="keychain-banner-title">No OS keychain: secrets cannot be saved</h2>
      <p>
        This app keeps secret values only in the OS keychain (the Secret Service on D-Bus, e.g. GNOME Keyring
        or KeePassXC), and none answers here: {problem}.
      </p>
      <p>
        Fix: start and unlock a Secret Service, then reload; or restart with <code>{restart}</code> to keep
        secrets in memory only (they are gone when the app stops).
      </p>
      <p className="muted">The demo runs anyway: its own passphrase is kept in memory, labelled so.</p>
    </section>
  );
}
