/**
 * One incoming launch request (or SEV-SNP guest attestation, whose verified report facts come in
 * `approval.snp`): who asks (host address, VM and its profile, chip id and whether the chain
 * proves it), what a verified launch would release (secret names, never values), whether the chain
 * reached an AMD root, the firmware API version and the policy; approve, deny once, or deny for a while
 * before the automatic deny. A denial that still refuses identical launches says until when, with
 * "Forget decision". Every host-supplied value is rendered as text.
 */
import { policyFlagNames, policyHex } from '../../../app/sev/policy';
import type { ApprovalView, Decision } from '../../../app/contract/ipc';
import { useDecide, useForgetDecision } from '../queries/hooks';
import { Countdown } from './countdown';
import { CopyButton } from './copy-button';
import { ErrorMessage } from './error-message';
import { formatClock, formatTime, shortHex } from '../lib/format';
import { LUKS_PASSPHRASE_GUID } from '../../../app/profile';

/** How long "Deny" refuses identical launches (the service's decision memory). */
export const DENY_FOR_MINUTES = 10;

/** A secret as the card names it: its label, else what it is, else its GUID. */
function secretName(s: NonNullable<ApprovalView['secrets']>[number]): string {
  if (s.label) return s.label;
  if (s.kind === 'luks-passphrase' || s.guid === LUKS_PASSPHRASE_GUID) return 'Disk (LUKS) passphrase';
  return s.guid;
}

/** The sentence saying until when a denial refuses identical launches, or undefined. */
export function refusalText(a: ApprovalView): string | undefined {
  if (!a.refusedUntil) return undefined;
  return a.denyMode === 'once'
    ? `Denied once: the waiting host is told; identical launches ask you again from ${formatClock(a.refusedUntil)}`
    : `Identical launches refused until ${formatClock(a.refusedUntil)}`;
}

const STATE_LABEL: Record<ApprovalView['state'], { text: string; tone: string }> = {
  pending: { text: 'Waiting for you', tone: 'warn' },
  approved: { text: 'Approved', tone: 'ok' },
  denied: { text: 'Denied', tone: 'bad' },
  expired: { text: 'Denied automatically (timed out)', tone: 'bad' },
};

function policyText(policy: number): string {
  try {
    const names = policyFlagNames(policy);
    return `${policyHex(policy)}${names.length ? ` (${names.join(', ')})` : ''}`;
  } catch {
    return `0x${policy.toString(16)} (sets reserved bits)`;
  }
}

const SIGNER_TEXT = {
  vcek: 'proven by the VCEK (the chip’s own key)',
  vlek: 'signed by a VLEK (the cloud provider’s key): the chip is not proven',
} as const;

const VOUCHED_TEXT = {
  measurement: 'the launch measurement matches one the profile expects',
  'id-key': 'an ID key the profile trusts signed the launch’s ID block',
  'author-key': 'an author key the profile trusts certified the launch’s ID key',
} as const;

/** What an SNP guest's verified report showed (replaces the SEV chain/API/policy facts). */
function SnpFacts({ a, snp }: { a: ApprovalView; snp: NonNullable<ApprovalView['snp']> }) {
  return (
    <>
      <dt>Platform</dt>
      <dd data-testid="snp-product">
        AMD {snp.product}
        {a.chipId ? (
          <>
            , chip{' '}
            <span className="mono" title={a.chipId}>
              {shortHex(a.chipId, 12)}
            </span>{' '}
            <CopyButton value={a.chipId} what="chip id" />
          </>
        ) : null}{' '}
        <span className={`pill ${snp.signer === 'vcek' ? 'ok' : 'warn'}`}>{SIGNER_TEXT[snp.signer]}</span>
      </dd>
      <dt>Root</dt>
      <dd data-testid="snp-root">
        {a.anchoredBy?.startsWith('amd-ark:') ? (
          <span className="pill ok">certified by AMD ({a.anchoredBy.slice('amd-ark:'.length)} root)</span>
        ) : (
          <span className="pill warn">
            certified by an extra root, not AMD&apos;s: {a.anchoredBy ?? 'unknown'}
          </span>
        )}
      </dd>
      <dt>Reported TCB</dt>
      <dd className="mono">{snp.reportedTcb}</dd>
      <dt>Measurement</dt>
      <dd>
        <span className="mono wrap" data-testid="snp-measurement">
          {snp.measurement}
        </span>{' '}
        <CopyButton value={snp.measurement} what="measurement" />
      </dd>
      <dt>Vouched for by</dt>
      <dd>{VOUCHED_TEXT[snp.vouchedBy]}</dd>
      <dt>SNP policy</dt>
      <dd className="mono">{snp.policy}</dd>
      <dt>VMPL</dt>
      <dd className="mono">{snp.vmpl}</dd>
      <dt>Resources</dt>
      <dd data-testid="snp-resources">
        {snp.resources.length === 0 ? (
          <span className="muted">the profile holds none</span>
        ) : (
          <ul className="plain-list">
            {snp.resources.map((r) => (
              <li key={r} className="mono">
                {r}
              </li>
            ))}
          </ul>
        )}
      </dd>
      <dt>Revocation</dt>
      <dd>
        <span className={`pill ${snp.revocation === 'CRL checked' ? 'ok' : 'warn'}`}>{snp.revocation}</span>
      </dd>
    </>
  );
}

/** The approval card; Approve/Deny call `approvals.decide`. */
export function ApprovalCard({ approval: a }: { approval: ApprovalView }) {
  const decide = useDecide();
  const forget = useForgetDecision();
  const pending = a.state === 'pending';
  const refusal = refusalText(a);
  const state = STATE_LABEL[a.state];
  const titleId = `approval-${a.id}`;
  const send = (decision: Decision) => decide.mutate({ id: a.id, decision });
  const vmName = a.vmId ?? 'any matching VM';
  const who = a.profileName ? `${a.profileName} (${vmName})` : vmName;
  const anchored = a.anchoredBy !== null;
  const snp = a.kind === 'snp-attest' ? a.snp : undefined;
  const what = a.kind === 'snp-attest' ? 'SEV-SNP attestation' : 'Launch';
  const whatLower = a.kind === 'snp-attest' ? 'SEV-SNP attestation' : 'launch';

  return (
    <article
      className={`card ${pending ? '' : state.tone}`}
      aria-labelledby={titleId}
      data-testid="approval-card"
    >
      <div className="card-header">
        <h3 id={titleId}>
          {what} of {a.profileName ? `${a.profileName} ` : ''}
          <span className="mono">{a.profileName ? `(${vmName})` : vmName}</span> from{' '}
          <span className="mono">{a.clientAddress}</span>
        </h3>
        <span className={`pill ${state.tone}`}>{state.text}</span>
      </div>
      <dl className="facts">
        <dt>{snp ? 'Guest address' : 'Host address'}</dt>
        <dd className="mono">{a.clientAddress}</dd>
        <dt>Profile</dt>
        <dd>
          {a.profileName ? (
            <>
              {a.profileName} <span className="mono muted">({vmName})</span>
            </>
          ) : (
            <span className="mono">{vmName}</span>
          )}
        </dd>
        <dt>Would release</dt>
        <dd data-testid="approval-secrets">
          {a.secrets === undefined ? (
            <span className="muted">unknown (no such profile here)</span>
          ) : a.secrets.length === 0 ? (
            <span className="muted">no secrets</span>
          ) : (
            <ul className="plain-list">
              {a.secrets.map((s) => (
                <li key={s.guid}>
                  {secretName(s)}
                  {s.resource ? (
                    <span className="mono muted"> {s.resource}</span>
                  ) : (
                    secretName(s) !== s.guid && <span className="mono muted"> {s.guid}</span>
                  )}
                </li>
              ))}
            </ul>
          )}
        </dd>
        {snp ? (
          <SnpFacts a={a} snp={snp} />
        ) : (
          <>
            <dt>Chip id</dt>
            <dd>
              {a.chipId ? (
                <>
                  <span className="mono" title={a.chipId}>
                    {shortHex(a.chipId, 12)}
                  </span>{' '}
                  <CopyButton value={a.chipId} what="chip id" />{' '}
                  {a.chipProven === true ? (
                    <span className="pill ok">proven by the certificate chain</span>
                  ) : a.chipProven === false ? (
                    <span className="pill warn">not proven: the host only says so</span>
                  ) : (
                    <span className="pill">proof unknown</span>
                  )}
                </>
              ) : a.chipProven === false ? (
                <span className="pill warn">claimed by the host, not proven (not shown)</span>
              ) : (
                <span className="muted">not sent by the host</span>
              )}
            </dd>
            <dt>Certificate chain</dt>
            <dd>
              {anchored && a.anchoredBy!.startsWith('extra:') ? (
                <span className="pill warn">
                  Anchored by an extra trusted root ({a.anchoredBy!.slice('extra:'.length)}), not one of
                  AMD&apos;s pinned roots
                </span>
              ) : anchored ? (
                <span className="pill ok">Anchored by AMD root {a.anchoredBy}</span>
              ) : (
                <span className="pill bad">Not anchored{a.chainError ? `: ${a.chainError}` : ''}</span>
              )}
            </dd>
            <dt>Firmware API</dt>
            <dd className="mono">
              {a.firmwareApi ? `${a.firmwareApi.major}.${a.firmwareApi.minor}` : '—'}
              {a.buildId !== undefined ? ` build ${a.buildId}` : ''}
            </dd>
            <dt>Policy</dt>
            <dd className="mono">{policyText(a.policy)}</dd>
          </>
        )}
        <dt>Received</dt>
        <dd>{formatTime(a.createdAt)}</dd>
        {a.decidedAt && (
          <>
            <dt>Decided</dt>
            <dd>{formatTime(a.decidedAt)}</dd>
          </>
        )}
      </dl>
      {pending && (
        <div className="actions">
          <button
            type="button"
            className="ok"
            disabled={decide.isPending}
            onClick={() => send('approve')}
            aria-label={`Approve ${whatLower} of ${vmName} from ${a.clientAddress}`}
          >
            Approve
          </button>
          <button
            type="button"
            className="danger"
            disabled={decide.isPending}
            onClick={() => send('deny-once')}
            aria-label={`Deny once: ${whatLower} of ${who} from ${a.clientAddress} (an identical launch asks again)`}
          >
            Deny once
          </button>
          <button
            type="button"
            className="danger"
            disabled={decide.isPending}
            onClick={() => send('deny')}
            aria-label={`Deny for ${DENY_FOR_MINUTES} min: ${whatLower} of ${who} from ${a.clientAddress} (identical launches are refused until then)`}
          >
            Deny for {DENY_FOR_MINUTES} min
          </button>
          <Countdown until={a.expiresAt} label="Automatic deny in" />
        </div>
      )}
      {refusal && (
        <div className="actions" data-testid="refusal">
          <span>{refusal}.</span>
          <button
            type="button"
            className="small"
            disabled={forget.isPending}
            onClick={() => forget.mutate(a.id)}
            aria-label={`Forget decision on the launch of ${who} from ${a.clientAddress}`}
          >
            Forget decision
          </button>
        </div>
      )}
      <ErrorMessage error={decide.error ?? forget.error} prefix="The decision was not recorded" />
    </article>
  );
}
