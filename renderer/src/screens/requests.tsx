/**
 * Live requests: launches waiting for the owner (approve / deny before the automatic deny), recent
 * decisions, validate results as they happen, and the simulated demo host.
 */
import { useState } from 'react';
import { useAppInfo, useApprovals, useEvents, useForgetDecision } from '../queries/hooks';
import { useNotificationPermission } from '../lib/notify';
import type { ApprovalView } from '../../../app/contract/ipc';
import { ScreenHeader } from '../components/screen-header';
import { ErrorMessage } from '../components/error-message';
import { ApprovalCard, refusalText } from '../components/approval-card';
import { EventItem } from '../components/event-item';
import { DemoHostPanel } from './demo-host';

const VALIDATE_FILTER = { types: ['validate' as const, 'secret-release' as const], limit: 20 };

/** Denials still refusing identical launches, each with "Forget decision". */
function ActiveRefusals({ approvals }: { approvals: ApprovalView[] }) {
  const forget = useForgetDecision();
  if (approvals.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="refusals-heading">
      <h2 id="refusals-heading">Refused for now ({approvals.length})</h2>
      <ul className="plain-list">
        {approvals.map((a) => {
          const who = a.profileName ? `${a.profileName} (${a.vmId})` : (a.vmId ?? 'any matching VM');
          return (
            <li key={a.id} className="row" data-testid="active-refusal">
              <span>
                {who} from <span className="mono">{a.clientAddress}</span>: {refusalText(a)}.
              </span>
              <button
                type="button"
                className="small"
                disabled={forget.isPending}
                onClick={() => forget.mutate(a.id)}
                aria-label={`Forget decision on the launch of ${who} from ${a.clientAddress}`}
              >
                Forget decision
              </button>
            </li>
          );
        })}
      </ul>
      <ErrorMessage error={forget.error} prefix="Not forgotten" />
    </section>
  );
}

/** The live requests screen. */
export function RequestsScreen() {
  const approvals = useApprovals();
  const validates = useEvents(VALIDATE_FILTER);
  const [showDecided, setShowDecided] = useState(true);
  const all = [...(approvals.data ?? [])].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const pending = all.filter((a) => a.state === 'pending');
  const decided = all.filter((a) => a.state !== 'pending').slice(0, 10);
  const refusing = all.filter((a) => a.refusedUntil !== undefined);
  const info = useAppInfo();
  const [permission, askPermission] = useNotificationPermission();

  return (
    <>
      <ScreenHeader title="Live requests">
        Hosts asking to launch your VMs, and SEV-SNP guests asking for their secrets. Approve only what you
        expect: a launch&apos;s secrets are released later, and only if the measurement matches the profile;
        an SNP guest&apos;s report is already verified when it asks.
      </ScreenHeader>
      <ErrorMessage error={approvals.error} />
      {info.data?.mode === 'browser' && permission === 'default' && (
        <p className="hint row">
          <span>This page can notify you when a launch is waiting, even from another tab.</span>
          <button type="button" className="small" onClick={() => void askPermission()}>
            Notify me of new requests
          </button>
        </p>
      )}
      <ActiveRefusals approvals={refusing} />
      <section aria-labelledby="pending-heading">
        <h2 id="pending-heading">Waiting for you ({pending.length})</h2>
        {approvals.isSuccess && pending.length === 0 && (
          <p className="muted">No launch is waiting. New requests appear here as they arrive.</p>
        )}
        {pending.map((a) => (
          <ApprovalCard key={a.id} approval={a} />
        ))}
      </section>
      <div className="grid-2">
        <section className="panel" aria-labelledby="validate-heading">
          <h2 id="validate-heading">Validate results</h2>
          <ErrorMessage error={validates.error} />
          {validates.isSuccess && (validates.data ?? []).length === 0 && (
            <p className="muted">None yet. A host validates after launching the approved VM.</p>
          )}
          <ul className="timeline" aria-live="polite" aria-label="Validate results">
            {(validates.data ?? []).map((e) => (
              <EventItem key={e.id} event={e} />
            ))}
          </ul>
        </section>
        <DemoHostPanel />
      </div>
      {decided.length > 0 && (
        <section aria-labelledby="decided-heading">
          <div className="card-header">
            <h2 id="decided-heading">Recently decided</h2>
            <button
              type="button"
              className="small"
              onClick={() => setShowDecided((v) => !v)}
              aria-expanded={showDecided}
            >
              {showDecided ? 'Hide' : 'Show'}
            </button>
          </div>
          {showDecided && decided.map((a) => <ApprovalCard key={a.id} approval={a} />)}
        </section>
      )}
    </>
  );
}
