/**
 * Listener: where hosts reach this service (bind address, port, TLS and its fingerprint), the tokens,
 * and the SSH reverse tunnel with its status.
 */
import { useId, useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import type { ListenerConfig, ListenerStatus, TunnelConfig, TunnelStatus } from '../../../app/contract/ipc';
import { useApi } from '../queries/api-context';
import { keys, useListenerStatus, useListenerTokens, useTunnelStatus } from '../queries/hooks';
import { ScreenHeader } from '../components/screen-header';
import { ErrorMessage } from '../components/error-message';
import { LabelledInput } from '../components/labelled-input';
import { CopyButton } from '../components/copy-button';
import { TrustedKeysPanel } from '../components/trusted-keys-panel';

const STATE_TONE: Record<ListenerStatus['state'], string> = {
  running: 'ok',
  starting: 'warn',
  draining: 'warn',
  stopped: '',
  error: 'bad',
};
const TUNNEL_TONE: Record<TunnelStatus['state'], string> = {
  up: 'ok',
  connecting: 'warn',
  off: '',
  down: 'bad',
  error: 'bad',
};

function ListenerForm({ status }: { status: ListenerStatus }) {
  const api = useApi();
  const client = useQueryClient();
  const id = useId();
  const [host, setHost] = useState(status.host);
  const [port, setPort] = useState(String(status.port));
  const [tls, setTls] = useState(status.tls);
  const [hostToken, setHostToken] = useState<'keep' | 'none' | 'generate'>('keep');
  const [confirmExposed, setConfirmExposed] = useState(false);
  const configure = useMutation({
    mutationFn: (c: ListenerConfig) => api.listener.configure(c),
    onSuccess: (s) => {
      client.setQueryData(keys.listener, s);
      void client.invalidateQueries({ queryKey: keys.tokens });
    },
  });
  const portN = Number(port);
  const portValid = Number.isInteger(portN) && portN >= 0 && portN <= 65535;
  const exposed = host !== '127.0.0.1' && host !== '::1' && host !== 'localhost';
  return (
    <form
      className="panel"
      aria-labelledby={`${id}-h`}
      onSubmit={(e) => {
        e.preventDefault();
        if (portValid && (!exposed || confirmExposed)) {
          configure.mutate({
            host,
            port: portN,
            tls,
            hostToken,
            confirmNonLoopback: exposed && confirmExposed,
          });
        }
      }}
    >
      <h2 id={`${id}-h`}>Settings</h2>
      <div className="form-grid">
        <LabelledInput
          label="Bind address"
          type="text"
          value={host}
          onChange={(e) => setHost(e.target.value)}
        />
        <LabelledInput
          label="Port"
          type="number"
          min={0}
          max={65535}
          value={port}
          onChange={(e) => setPort(e.target.value)}
          aria-invalid={!portValid}
        />
        <label>
          Host token
          <select value={hostToken} onChange={(e) => setHostToken(e.target.value as typeof hostToken)}>
            <option value="keep">Keep the current setting</option>
            <option value="generate">Generate a new token</option>
            <option value="none">Require none</option>
          </select>
        </label>
      </div>
      <label className="inline">
        <input type="checkbox" checked={tls} onChange={(e) => setTls(e.target.checked)} />
        TLS with a self-signed certificate (hosts pin its fingerprint)
      </label>
      {exposed && (
        <p className="warning">
          Binding to {host} exposes the listener beyond this machine: use TLS and a host token, or an SSH
          tunnel.
        </p>
      )}
      {exposed && (
        <label className="inline">
          <input
            type="checkbox"
            checked={confirmExposed}
            onChange={(e) => setConfirmExposed(e.target.checked)}
          />
          I understand that other machines can reach the listener on {host}
        </label>
      )}
      <div className="actions">
        <button
          type="submit"
          className="primary"
          disabled={!portValid || (exposed && !confirmExposed) || configure.isPending}
        >
          Apply and restart the listener
        </button>
      </div>
      <ErrorMessage error={configure.error} prefix="Not applied" />
    </form>
  );
}

function Tokens() {
  const [shown, setShown] = useState(false);
  const tokens = useListenerTokens(shown);
  return (
    <section className="panel" aria-labelledby="tokens-heading">
      <h2 id="tokens-heading">Tokens</h2>
      <p className="hint">
        The owner token controls this service: keep it to yourself. Hosts only need the host token.
      </p>
      <div className="actions">
        <button type="button" onClick={() => setShown((v) => !v)} aria-expanded={shown}>
          {shown ? 'Hide tokens' : 'Show tokens'}
        </button>
      </div>
      <ErrorMessage error={tokens.error} />
      {shown && tokens.data && (
        <dl className="facts">
          <dt>Owner token</dt>
          <dd>
            <code className="mono wrap">{tokens.data.ownerToken}</code>{' '}
            <CopyButton value={tokens.data.ownerToken} what="owner token" />
          </dd>
          <dt>Host token</dt>
          <dd>
            {tokens.data.hostToken ? (
              <>
                <code className="mono wrap">{tokens.data.hostToken}</code>{' '}
                <CopyButton value={tokens.data.hostToken} what="host token" />
              </>
            ) : (
              <span className="muted">none required</span>
            )}
          </dd>
        </dl>
      )}
    </section>
  );
}

function TunnelPanel() {
  const api = useApi();
  const client = useQueryClient();
  const id = useId();
  const status = useTunnelStatus();
  const [target, setTarget] = useState('');
  const [sshPort, setSshPort] = useState('22');
  const [remotePort, setRemotePort] = useState('8443');
  const configure = useMutation({
    mutationFn: (c: TunnelConfig) => api.tunnel.configure(c),
    onSuccess: (s) => client.setQueryData(keys.tunnel, s),
  });
  const s = status.data;
  const send = (enabled: boolean) =>
    configure.mutate({
      enabled,
      target: target || s?.target || 'user@host',
      sshPort: Number(sshPort),
      remotePort: Number(remotePort),
    });
  return (
    <section className="panel" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>SSH reverse tunnel</h2>
      <p className="hint">
        Lets a host reach this listener without opening a port here: ssh -R forwards the host&apos;s local
        port to it.
      </p>
      <ErrorMessage error={status.error} />
      {s && (
        <p>
          Status <span className={`pill ${TUNNEL_TONE[s.state]}`}>{s.state}</span>
          {s.target ? (
            <>
              {' '}
              to <span className="mono">{s.target}</span>
              {s.remotePort ? `, host port ${s.remotePort}` : ''}
            </>
          ) : null}
          {s.message ? <span className="muted"> — {s.message}</span> : null}
        </p>
      )}
      <div className="form-grid">
        <LabelledInput
          label="SSH target (user@host)"
          type="text"
          value={target}
          placeholder={s?.target ?? 'owner@kvm-host.example'}
          onChange={(e) => setTarget(e.target.value)}
        />
        <LabelledInput
          label="SSH port"
          type="number"
          min={1}
          max={65535}
          value={sshPort}
          onChange={(e) => setSshPort(e.target.value)}
        />
        <LabelledInput
          label="Port on the host"
          type="number"
          min={1}
          max={65535}
          value={remotePort}
          onChange={(e) => setRemotePort(e.target.value)}
        />
      </div>
      <div className="actions">
        <button
          type="button"
          className="primary"
          onClick={() => send(true)}
          disabled={configure.isPending || target === ''}
        >
          Start tunnel
        </button>
        <button
          type="button"
          onClick={() => send(false)}
          disabled={configure.isPending || !s || s.state === 'off'}
        >
          Stop tunnel
        </button>
      </div>
      <ErrorMessage error={configure.error} prefix="Tunnel not changed" />
    </section>
  );
}

/** The Listener screen. */
export function ListenerScreen() {
  const status = useListenerStatus();
  const s = status.data;
  return (
    <>
      <ScreenHeader title="Listener">Where hosts send their launch and validate requests.</ScreenHeader>
      <ErrorMessage error={status.error} />
      {s && (
        <section className="panel" aria-labelledby="listener-state-heading">
          <h2 id="listener-state-heading">
            Status <span className={`pill ${STATE_TONE[s.state]}`}>{s.state}</span>
          </h2>
          <dl className="facts">
            <dt>Address</dt>
            <dd>
              {s.url ? (
                <>
                  <code className="mono">{s.url}</code> <CopyButton value={s.url} what="listener URL" />
                </>
              ) : (
                <code className="mono">
                  {s.host}:{s.port}
                </code>
              )}
            </dd>
            <dt>TLS</dt>
            <dd>{s.tls ? 'on' : 'off (plain HTTP: use on loopback or through a tunnel only)'}</dd>
            {s.tlsFingerprint && (
              <>
                <dt>TLS fingerprint</dt>
                <dd>
                  <code className="mono wrap">{s.tlsFingerprint}</code>{' '}
                  <CopyButton value={s.tlsFingerprint} what="TLS fingerprint" />
                </dd>
              </>
            )}
            <dt>Host token</dt>
            <dd>{s.hostTokenRequired ? 'required' : 'not required'}</dd>
            {s.hostTokenRecommended && (
              <>
                <dt>Recommendation</dt>
                <dd className="warning">
                  A VM asks for manual approval and no host token is set: anyone who reaches the listener can
                  queue launches for you to approve. Generate a host token below and give it to your hosts;
                  with it they keep their own approval budget during a flood.
                </dd>
              </>
            )}
            {s.auditFull && (
              <>
                <dt>Audit log</dt>
                <dd className="error">
                  The retained audit stream reached its disk budget: secret releases are refused until you
                  move archived segment files out of the data directory&apos;s audit-retained folder.
                </dd>
              </>
            )}
            {s.error && (
              <>
                <dt>Error</dt>
                <dd className="error">{s.error}</dd>
              </>
            )}
          </dl>
        </section>
      )}
      <div className="grid-2">
        {s && <ListenerForm key={`${s.host}:${s.port}:${s.tls}`} status={s} />}
        <Tokens />
      </div>
      <TunnelPanel />
      <TrustedKeysPanel />
    </>
  );
}
