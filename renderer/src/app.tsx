/**
 * The app shell: a sidebar of screens, the live subscriptions, and `data-app-state` on the root
 * (loading → ready once app info, profiles and approvals have loaded; tests wait on it).
 */
import { useEffect, useState } from 'react';
import { useAppInfo, useApprovals, useLiveUpdates, useProfiles } from './queries/hooks';
import { ErrorMessage } from './components/error-message';
import { KeychainBanner, secretStoreLabel } from './components/keychain-banner';
import { useRequestNotifications } from './lib/notify';
import { WelcomeScreen } from './screens/welcome';
import { ArtifactsScreen } from './screens/artifacts';
import { ProfilesScreen } from './screens/profiles';
import { SecretsScreen } from './screens/secrets';
import { RequestsScreen } from './screens/requests';
import { ActivityScreen } from './screens/activity';
import { ListenerScreen } from './screens/listener';
import { HostSetupScreen } from './screens/host-setup';

export const SCREENS = [
  { id: 'welcome', label: 'Get started' },
  { id: 'requests', label: 'Live requests' },
  { id: 'profiles', label: 'VM profiles' },
  { id: 'artifacts', label: 'Artifacts' },
  { id: 'secrets', label: 'Secrets' },
  { id: 'activity', label: 'Activity' },
  { id: 'listener', label: 'Listener' },
  { id: 'host-setup', label: 'Host setup' },
] as const;
export type ScreenId = (typeof SCREENS)[number]['id'];

function screenFromHash(): ScreenId | undefined {
  const id = window.location.hash.replace(/^#\/?/, '');
  return SCREENS.find((s) => s.id === id)?.id;
}

/** The whole UI. */
export function App() {
  useLiveUpdates();
  const info = useAppInfo();
  const profiles = useProfiles();
  const approvals = useApprovals();
  const [screen, setScreen] = useState<ScreenId | undefined>(screenFromHash);
  // The desktop app notifies from main; the browser page does it itself when permitted.
  useRequestNotifications(approvals.data, info.data?.mode === 'browser');

  useEffect(() => {
    const onHash = () => setScreen(screenFromHash());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const loaded = info.isSuccess && profiles.isSuccess && approvals.isSuccess;
  const failed = info.isError || profiles.isError || approvals.isError;
  const appState = loaded ? 'ready' : failed ? 'error' : 'loading';

  // First run opens on the explanation; afterwards on the live requests.
  const current: ScreenId = screen ?? (info.data && !info.data.firstRunComplete ? 'welcome' : 'requests');
  const go = (id: ScreenId) => {
    window.location.hash = `/${id}`;
    setScreen(id);
    document.getElementById('main')?.focus();
  };
  const pending = approvals.data?.filter((a) => a.state === 'pending').length ?? 0;
  const title = SCREENS.find((s) => s.id === current)!.label;

  useEffect(() => {
    document.title = pending > 0 ? `(${pending}) ${title} · SEV Attest` : `${title} · SEV Attest`;
  }, [pending, title]);

  return (
    <div className="app" data-app-state={appState}>
      <a
        className="skip-link"
        href="#main"
        onClick={(e) => {
          // The hash holds the screen: move focus without changing it.
          e.preventDefault();
          document.getElementById('main')?.focus();
        }}
      >
        Skip to content
      </a>
      <aside className="sidebar">
        <div className="brand">SEV Attest</div>
        <nav aria-label="Screens">
          <ul>
            {SCREENS.map((s) => (
              <li key={s.id}>
                <button
                  type="button"
                  className="nav-item"
                  aria-current={s.id === current ? 'page' : undefined}
                  onClick={() => go(s.id)}
                >
                  <span>{s.label}</span>
                  {s.id === 'requests' && pending > 0 && (
                    <span className="badge">
                      {pending}
                      <span className="visually-hidden"> waiting</span>
                    </span>
                  )}
                </button>
              </li>
            ))}
          </ul>
        </nav>
        <div className="sidebar-footer muted">
          {info.data && (
            <>
              <div>
                v{info.data.version} · {info.data.mode === 'desktop' ? 'desktop' : 'browser'}
              </div>
              <div>Secrets: {secretStoreLabel(info.data.secretStore)}</div>
            </>
          )}
        </div>
      </aside>
      <main id="main" tabIndex={-1} aria-labelledby="screen-title">
        {failed && (
          <ErrorMessage
            error={info.error ?? profiles.error ?? approvals.error}
            prefix="The service did not answer"
          />
        )}
        {info.data && <KeychainBanner info={info.data} />}
        {current === 'welcome' && <WelcomeScreen onNavigate={go} />}
        {current === 'requests' && <RequestsScreen />}
        {current === 'profiles' && <ProfilesScreen />}
        {current === 'artifacts' && <ArtifactsScreen />}
        {current === 'secrets' && <SecretsScreen />}
        {current === 'activity' && <ActivityScreen />}
        {current === 'listener' && <ListenerScreen />}
        {current === 'host-setup' && <HostSetupScreen />}
      </main>
    </div>
  );
}
