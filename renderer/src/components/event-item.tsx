/** One audit-log entry in the timeline, with the mismatch explanation for a failed validate. */
import type { AuditEvent } from '../../../app/contract/ipc';
import { formatTime, shortHex } from '../lib/format';
import { MismatchView, mismatchOf } from './mismatch-view';

const TYPE_LABEL: Record<AuditEvent['type'], string> = {
  launch: 'Launch',
  decision: 'Decision',
  validate: 'Validate',
  'secret-release': 'Secret released',
  'snp-attest': 'SEV-SNP attestation',
  secret: 'Secret changed or revealed',
  profile: 'Profile',
  listener: 'Listener',
  tunnel: 'Tunnel',
  error: 'Error',
};

const RESULT_TONE: Record<AuditEvent['result'], string> = {
  ok: 'ok',
  refused: 'bad',
  error: 'bad',
  pending: 'warn',
  info: '',
};

/** A string detail of an event (e.g. the resource path of an SNP release), if present. */
function detail(e: AuditEvent, key: string): string | undefined {
  const v = e.details?.[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function EventItem({ event: e }: { event: AuditEvent }) {
  const mismatch = mismatchOf(e);
  const resource = detail(e, 'resource');
  const measurement = detail(e, 'measurement');
  const tone = RESULT_TONE[e.result];
  return (
    <li className={tone} data-testid="audit-event" data-type={e.type} data-result={e.result}>
      <div className="card-header">
        <strong>
          {TYPE_LABEL[e.type]}
          {e.vmId ? (
            <>
              {' '}
              · <span className="mono">{e.vmId}</span>
            </>
          ) : null}
        </strong>
        <span>
          <span className={`pill ${tone}`}>{e.result}</span>{' '}
          <time dateTime={e.time}>{formatTime(e.time)}</time>
        </span>
      </div>
      {e.message && <p>{e.message}</p>}
      {resource && (
        <p data-testid="event-resource">
          Resource <span className="mono">{resource}</span>
        </p>
      )}
      <p className="inputs">
        {[
          e.reason && `reason ${e.reason}`,
          e.client && `client ${e.client}`,
          e.chipId && `chip ${shortHex(e.chipId)}`,
          e.anchor && `anchored by ${e.anchor}`,
          e.connection && `connection ${shortHex(e.connection, 6)}`,
          measurement && `measurement ${shortHex(measurement)}`,
        ]
          .filter(Boolean)
          .join(' · ')}
      </p>
      {mismatch && (
        <details open>
          <summary>Why the measurement did not match</summary>
          <MismatchView mismatch={mismatch} />
        </details>
      )}
    </li>
  );
}
