/**
 * One incoming launch request: who asks (client address, VM, chip id), whether the chain reached an AMD
 * root, the firmware API version and the policy; approve or deny with one click before the automatic deny.
 * Every host-supplied value is rendered as text.
 */
import { policyFlagNames, policyHex } from '../../../app/sev/policy';
import type { ApprovalView, Decision } from '../../../app/contract/ipc';
import { useDecide } from '../queries/hooks';
import { Countdown } from './countdown';
import { CopyButton } from './copy-button';
import { ErrorMessage } from './error-message';
import { formatTime, shortHex } from '../lib/format';

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

/** The approval card; Approve/Deny call `approvals.decide`. */
export function ApprovalCard({ approval: a }: { approval: ApprovalView }) {
  const decide = useDecide();
  const pending = a.state === 'pending';
  const state = STATE_LABEL[a.state];
  const titleId = `approval-${a.id}`;
  const send = (decision: Decision) => decide.mutate({ id: a.id, decision });
  const vmName = a.vmId ?? 'any matching VM';
  const anchored = a.anchoredBy !== null;

  return (
    <article
      className={`card ${pending ? '' : state.tone}`}
      aria-labelledby={titleId}
      data-testid="approval-card"
    >
      <div className="card-header">
        <h3 id={titleId}>
          Launch of <span className="mono">{vmName}</span> from{' '}
          <span className="mono">{a.clientAddress}</span>
        </h3>
        <span className={`pill ${state.tone}`}>{state.text}</span>
      </div>
      <dl className="facts">
        <dt>Client</dt>
        <dd className="mono">{a.clientAddress}</dd>
        <dt>VM</dt>
        <dd className="mono">{vmName}</dd>
        <dt>Chip id</dt>
        <dd>
          {a.chipId ? (
            <>
              <span className="mono" title={a.chipId}>
                {shortHex(a.chipId, 12)}
              </span>{' '}
              <CopyButton value={a.chipId} what="chip id" />
            </>
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
            aria-label={`Approve launch of ${vmName} from ${a.clientAddress}`}
          >
            Approve
          </button>
          <button
            type="button"
            className="danger"
            disabled={decide.isPending}
            onClick={() => send('deny')}
            aria-label={`Deny launch of ${vmName} from ${a.clientAddress}`}
          >
            Deny
          </button>
          <Countdown until={a.expiresAt} label="Automatic deny in" />
        </div>
      )}
      <ErrorMessage error={decide.error} prefix="The decision was not recorded" />
    </article>
  );
}
