/**
 * Bundle signing keys: this machine's key (fingerprint and public key, to give to whoever should trust
 * its bundles) and the keys this machine trusts to sign the bundles it imports.
 */
import { formatTime } from '../lib/format';
import { useId, useState } from 'react';
import { useKeygen, useSigningKey, useTrustKey, useTrustedKeys, useUntrustKey } from '../queries/bundles';
import { CopyButton } from './copy-button';
import { ErrorMessage } from './error-message';
import { TableHead } from './table-head';

/** The trusted-keys panel (listener / settings screen). */
export function TrustedKeysPanel() {
  const id = useId();
  const signingKey = useSigningKey();
  const keygen = useKeygen();
  const trusted = useTrustedKeys();
  const trust = useTrustKey();
  const untrust = useUntrustKey();
  const [keyText, setKeyText] = useState('');
  const [label, setLabel] = useState('');
  const own = signingKey.data?.fingerprint;

  return (
    <section className="panel" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Bundle signing keys</h2>
      <p className="hint">
        Measurement bundles are signed with Ed25519. Give your public key to whoever imports your bundles;
        import accepts only bundles signed by a key listed below.
      </p>

      <h3>This machine&apos;s key</h3>
      <ErrorMessage error={signingKey.error} />
      {signingKey.data && (
        <dl className="facts">
          <dt>Fingerprint</dt>
          <dd>
            <code className="mono wrap">{signingKey.data.fingerprint}</code>{' '}
            <CopyButton value={signingKey.data.fingerprint} what="signing key fingerprint" />
          </dd>
          <dt>Public key</dt>
          <dd>
            <code className="mono wrap">{signingKey.data.publicKey}</code>{' '}
            <CopyButton value={signingKey.data.publicKey} what="signing public key" />
          </dd>
        </dl>
      )}
      {signingKey.data === null && (
        <div className="actions">
          <span className="muted">No signing key yet (it is kept in the OS keychain).</span>
          <button type="button" disabled={keygen.isPending} onClick={() => keygen.mutate(false)}>
            Create signing key
          </button>
        </div>
      )}
      <ErrorMessage error={keygen.error} prefix="Could not create the key" />

      <h3>Trusted signers</h3>
      <ErrorMessage error={trusted.error} />
      {trusted.data && trusted.data.length === 0 && <p className="muted">No trusted keys yet.</p>}
      {trusted.data && trusted.data.length > 0 && (
        <table>
          <TableHead columns={['Label', 'Fingerprint', 'Added']} />
          <tbody>
            {trusted.data.map((k) => (
              <tr key={k.fingerprint}>
                <td>
                  {k.label ?? <span className="muted">no label</span>}
                  {k.fingerprint === own && (
                    <>
                      {' '}
                      <span className="pill ok">this machine</span>
                    </>
                  )}
                </td>
                <td className="mono hash">{k.fingerprint}</td>
                <td>
                  <time dateTime={k.addedAt}>{formatTime(k.addedAt)}</time>
                </td>
                <td>
                  <button
                    type="button"
                    className="small"
                    disabled={untrust.isPending}
                    onClick={() => untrust.mutate(k.fingerprint)}
                    aria-label={`Remove ${k.label ?? k.fingerprint}`}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorMessage error={untrust.error} prefix="Could not remove the key" />

      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (keyText.trim() === '') return;
          trust.mutate(
            { keyText: keyText.trim(), ...(label.trim() ? { label: label.trim() } : {}) },
            {
              onSuccess: () => {
                setKeyText('');
                setLabel('');
              },
            },
          );
        }}
      >
        <div className="row">
          <label>
            Public key or fingerprint
            <input
              type="text"
              value={keyText}
              onChange={(e) => setKeyText(e.target.value)}
              placeholder="base64 public key, or ed25519:…"
            />
          </label>
          <label>
            Label
            <input type="text" value={label} onChange={(e) => setLabel(e.target.value)} maxLength={200} />
          </label>
          <div className="actions">
            <button type="submit" disabled={trust.isPending || keyText.trim() === ''}>
              Trust key
            </button>
          </div>
        </div>
      </form>
      <ErrorMessage error={trust.error} prefix="Could not trust the key" />
    </section>
  );
}
