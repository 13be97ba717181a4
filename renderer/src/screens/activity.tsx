/** Activity: the audit log as a timeline with filters, and export as JSON. */
import { useId, useMemo, useState } from 'react';
import { useMutation } from '@tanstack/react-query';
import {
  AUDIT_EVENT_TYPES,
  AUDIT_RESULTS,
  type AuditEventType,
  type AuditFilter,
  type AuditResult,
} from '../../../app/contract/ipc';
import { useApi } from '../queries/api-context';
import { useEvents, useProfiles } from '../queries/hooks';
import { ScreenHeader } from '../components/screen-header';
import { ErrorMessage } from '../components/error-message';
import { EventItem } from '../components/event-item';

/** Saves text as a file through a temporary object URL (works in the browser and in Electron). */
function saveFile(fileName: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The Activity screen. */
export function ActivityScreen() {
  const api = useApi();
  const id = useId();
  const profiles = useProfiles().data ?? [];
  const [type, setType] = useState('');
  const [result, setResult] = useState('');
  const [vmId, setVmId] = useState('');
  const filter = useMemo<AuditFilter>(
    () => ({
      types: type ? [type as AuditEventType] : undefined,
      result: result ? (result as AuditResult) : undefined,
      vmId: vmId || undefined,
      limit: 500,
    }),
    [type, result, vmId],
  );
  const events = useEvents(filter);
  const exported = useMutation({
    mutationFn: () => api.events.export({ ...filter, limit: undefined }),
    onSuccess: ({ fileName, json }) => saveFile(fileName, json),
  });

  return (
    <>
      <ScreenHeader
        title="Activity"
        actions={
          <button type="button" onClick={() => exported.mutate()} disabled={exported.isPending}>
            Export as JSON
          </button>
        }
      >
        Every launch, decision, validate and secret release, newest first. A failed validate shows which
        digests were expected and what the host reported.
      </ScreenHeader>
      <ErrorMessage error={exported.error} prefix="Export failed" />
      <form className="row panel" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <label htmlFor={`${id}-type`}>
          Type
          <select id={`${id}-type`} value={type} onChange={(e) => setType(e.target.value)}>
            <option value="">All</option>
            {AUDIT_EVENT_TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label htmlFor={`${id}-result`}>
          Result
          <select id={`${id}-result`} value={result} onChange={(e) => setResult(e.target.value)}>
            <option value="">All</option>
            {AUDIT_RESULTS.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label htmlFor={`${id}-vm`}>
          VM
          <select id={`${id}-vm`} value={vmId} onChange={(e) => setVmId(e.target.value)}>
            <option value="">All</option>
            {profiles.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name} ({p.id})
              </option>
            ))}
          </select>
        </label>
      </form>
      <ErrorMessage error={events.error} />
      <section className="panel" aria-labelledby={`${id}-h`}>
        <h2 id={`${id}-h`}>Timeline ({events.data?.length ?? 0})</h2>
        {events.isSuccess && events.data.length === 0 && (
          <p className="muted">Nothing matches these filters.</p>
        )}
        <ol className="timeline" aria-label="Audit events">
          {(events.data ?? []).map((e) => (
            <EventItem key={e.id} event={e} />
          ))}
        </ol>
      </section>
    </>
  );
}
