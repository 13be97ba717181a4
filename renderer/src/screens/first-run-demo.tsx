/**
 * The first-run demo: one button, nothing to set up. The service creates (or reuses) the `demo` profile
 * with the shipped demo firmware and a demo passphrase; its simulated host asks to launch it, the request
 * appears here to approve, and the result says whether the simulated guest decrypted the passphrase.
 */
import { useEffect, useId, useState, type ReactNode } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import type { ApprovalView } from '../../../app/contract/ipc';
import { useApi } from '../queries/api-context';
import { keys, useApprovals } from '../queries/hooks';
import { ApprovalCard } from '../components/approval-card';
import { ErrorMessage } from '../components/error-message';
import { DemoResult } from '../components/demo-result';

/** The profile the service creates for the demo (server/services/demo-setup.ts DEMO_VM_ID). */
export const DEMO_VM_ID = 'demo';

type StepState = 'todo' | 'active' | 'done' | 'failed';

const STEP_MARK: Record<StepState, string> = { todo: 'next', active: 'now', done: 'done', failed: 'stopped' };

function Step({ state, children }: { state: StepState; children: ReactNode }) {
  return (
    <li data-state={state} aria-current={state === 'active' ? 'step' : undefined}>
      <span className={`pill ${state === 'done' ? 'ok' : state === 'failed' ? 'bad' : ''}`}>
        {STEP_MARK[state]}
      </span>{' '}
      {children}
    </li>
  );
}

/** The newest demo launch request that was not there before this run started. */
function demoRequest(all: ApprovalView[] | undefined, before: Set<string> | undefined) {
  if (!before) return undefined;
  return [...(all ?? [])]
    .filter((a) => a.vmId === DEMO_VM_ID && !before.has(a.id))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
}

/** "Run the demo" with its progress and result (the first-run screen). */
export function FirstRunDemo() {
  const api = useApi();
  const client = useQueryClient();
  const approvals = useApprovals();
  const id = useId();
  const [before, setBefore] = useState<Set<string>>();
  const run = useMutation({
    mutationFn: () => api.demo.run({}),
    onSettled: () => {
      for (const queryKey of [keys.profiles, keys.artifacts, keys.approvals])
        void client.invalidateQueries({ queryKey });
    },
  });
  const request = demoRequest(approvals.data, before);
  const waiting = run.isPending && !request;

  // Requests arrive as pushed events; while none has come yet, ask again once a second as well.
  useEffect(() => {
    if (!waiting) return;
    const t = setInterval(() => void client.invalidateQueries({ queryKey: keys.approvals }), 1000);
    return () => clearInterval(t);
  }, [waiting, client]);

  const start = () => {
    setBefore(new Set((approvals.data ?? []).map((a) => a.id)));
    run.mutate();
  };

  const started = before !== undefined;
  const prepare: StepState = !started
    ? 'todo'
    : request || run.data
      ? 'done'
      : run.isError
        ? 'failed'
        : 'active';
  const decided = request !== undefined && request.state !== 'pending';
  // A release means the request was approved, whatever the (refetched) list shows by now.
  const approve: StepState =
    run.data?.outcome === 'released'
      ? 'done'
      : !request
        ? run.isError
          ? 'failed'
          : 'todo'
        : request.state === 'pending'
          ? 'active'
          : request.state === 'approved'
            ? 'done'
            : 'failed';
  const release: StepState = run.data
    ? run.data.outcome === 'released'
      ? 'done'
      : 'failed'
    : decided && request?.state === 'approved'
      ? 'active'
      : 'todo';

  return (
    <section className="panel" aria-labelledby={`${id}-h`} data-testid="first-run-demo">
      <h2 id={`${id}-h`}>Try it: the demo</h2>
      <p>
        A simulated host (software SEV firmware, no hardware needed) launches a <strong>demo</strong> VM
        profile against this listener. SEV Attest creates that profile for you with a small demo firmware and
        the passphrase &ldquo;demo passphrase — not a real secret&rdquo;. You approve the request below; the
        host then proves its measurement and gets the passphrase.
      </p>
      <div className="actions">
        <button type="button" className="primary" onClick={start} disabled={run.isPending}>
          {run.isPending ? 'Demo running…' : started ? 'Run the demo again' : 'Run the demo'}
        </button>
      </div>
      {started && (
        <ol aria-label="Demo progress" aria-live="polite">
          <Step state={prepare}>Prepare the demo profile (firmware, passphrase) and launch</Step>
          <Step state={approve}>Approve the simulated host&apos;s launch request</Step>
          <Step state={release}>Validate the measurement and release the passphrase</Step>
        </ol>
      )}
      {request && request.state === 'pending' && <ApprovalCard approval={request} />}
      {run.data && (
        <DemoResult
          result={run.data}
          testId="first-run-demo-result"
          releasedText="The simulated guest decrypted the demo passphrase: the whole approve-and-release cycle worked."
        >
          {run.data.outcome === 'released' && (
            <p>
              The <span className="mono">{run.data.vmId ?? DEMO_VM_ID}</span> profile is now under VM
              profiles, and the Activity screen shows every step. Delete the profile whenever you like.
            </p>
          )}
          {run.data.outcome === 'refused' && run.data.code === 'denied' && (
            <p>You denied the request, so nothing was released. Run the demo again to approve it.</p>
          )}
        </DemoResult>
      )}
      <ErrorMessage error={run.error} prefix="The demo could not run" />
    </section>
  );
}
