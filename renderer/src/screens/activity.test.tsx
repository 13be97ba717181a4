// @vitest-environment jsdom
/** Activity says newest first and lists newest first, also right after a reload. */
import { describe, expect, it } from 'vitest';
import { screen, within } from '@testing-library/react';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { ActivityScreen } from './activity';
import type { AuditEvent } from '../../../app/contract/ipc';

const event = (seq: number, message: string): AuditEvent =>
  ({
    id: `e${seq}`,
    seq,
    time: new Date(Date.UTC(2026, 0, 1, 0, seq)).toISOString(),
    type: 'listener',
    result: 'info',
    message,
  }) as AuditEvent;

describe('ActivityScreen', () => {
  it('lists the service’s oldest-first answer newest first', async () => {
    const { api } = createFakeApi({
      events: { list: () => Promise.resolve([event(1, 'first'), event(2, 'second'), event(3, 'third')]) },
      profiles: { list: () => Promise.resolve([]) },
    });
    renderWithQuery(
      <ApiProvider api={api}>
        <ActivityScreen />
      </ApiProvider>,
    );
    const list = await screen.findByRole('list', { name: 'Audit events' });
    await within(list).findByText(/third/);
    const texts = within(list)
      .getAllByRole('listitem')
      .map((li) => li.textContent ?? '');
    expect(texts.map((t) => /first|second|third/.exec(t)?.[0])).toEqual(['third', 'second', 'first']);
  });
});
