/**
 * Deny once, deny for a while, and forget: a Deny used to refuse identical launches for 10 minutes with
 * nothing saying so and no way back.
 */
import { describe, expect, it } from 'vitest';
import { ApprovalService, type ApprovalRequestInfo } from './approvals';

const info: ApprovalRequestInfo = {
  vmId: 'web',
  client: '192.0.2.1',
  chipId: undefined,
  anchor: 'milan',
  policy: 5,
};

function service() {
  let now = 1_000_000;
  const svc = new ApprovalService({ now: () => now, decisionTtlMs: 600_000, denyOnceTtlMs: 60_000 });
  return { svc, advance: (ms: number) => (now += ms) };
}

describe('ApprovalService decisions', () => {
  it('deny (for a while) refuses identical launches until refusedUntil', () => {
    const { svc, advance } = service();
    const a = svc.request('fp', info).approval;
    svc.decide(a.id, 'deny');
    expect(svc.refusedUntil(a)).toBe(1_000_000 + 600_000);
    advance(300_000);
    expect(svc.request('fp', info)).toMatchObject({ created: false, approval: { state: 'denied' } });
    advance(300_001);
    expect(svc.request('fp', info)).toMatchObject({ created: true, approval: { state: 'pending' } });
    svc.close();
  });

  it('deny once is remembered only until the waiting host has been told', () => {
    const { svc, advance } = service();
    const a = svc.request('fp', info).approval;
    svc.decide(a.id, 'deny-once');
    expect(a).toMatchObject({ state: 'denied', denyOnce: true });
    expect(svc.request('fp', info)).toMatchObject({ created: false, approval: { state: 'denied' } });
    advance(60_001);
    expect(svc.request('fp', info)).toMatchObject({ created: true, approval: { state: 'pending' } });
    svc.close();
  });

  it('forget drops the decision at once: the next identical launch asks the owner again', () => {
    const { svc } = service();
    let changes = 0;
    svc.onListChange(() => changes++);
    const a = svc.request('fp', info).approval;
    expect(() => svc.forget(a.id)).toThrow(/still pending/);
    svc.decide(a.id, 'deny');
    svc.forget(a.id);
    expect(changes).toBe(1);
    expect(svc.refusedUntil(a)).toBeUndefined();
    expect(svc.list()).toEqual([]);
    expect(svc.request('fp', info)).toMatchObject({ created: true, approval: { state: 'pending' } });
    expect(() => svc.forget('nope')).toThrow(/no approval/);
    svc.close();
  });
});
