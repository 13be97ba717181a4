// @vitest-environment jsdom
/** Activity rows of SEV-SNP guests: attestation outcomes and releases with their resource path. */
import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import '../test-utils';
import { EventItem } from './event-item';
import type { AuditEvent } from '../../../app/contract/ipc';

const base = { id: 'e1', seq: 1, time: '2026-12-03T08:00:00.000Z', vmId: 'snp-01', client: '192.0.2.7' };

describe('EventItem', () => {
  it('labels an SNP attestation and shows its measurement', () => {
    render(
      <ul>
        <EventItem
          event={
            {
              ...base,
              type: 'snp-attest',
              result: 'ok',
              message: 'SNP guest attested',
              details: { measurement: 'c4'.repeat(48) },
            } as AuditEvent
          }
        />
      </ul>,
    );
    const row = screen.getByTestId('audit-event');
    expect(row).toHaveAttribute('data-type', 'snp-attest');
    expect(row).toHaveTextContent('SEV-SNP attestation · snp-01');
    expect(row).toHaveTextContent(/measurement c4c4/);
  });

  it('shows the resource path of a release, never a value', () => {
    render(
      <ul>
        <EventItem
          event={
            {
              ...base,
              type: 'secret-release',
              result: 'ok',
              message: 'released default/luks/snp-01',
              details: { resource: 'default/luks/snp-01' },
            } as AuditEvent
          }
        />
      </ul>,
    );
    expect(screen.getByTestId('event-resource')).toHaveTextContent('Resource default/luks/snp-01');
    expect(screen.getByTestId('audit-event')).toHaveTextContent('Secret released · snp-01');
  });
});
