/** Issue 4 screen 4: a desktop notification for a new launch request while the window is hidden. */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { ApprovalView } from '../app/contract/ipc';

const { shown } = vi.hoisted(() => ({
  shown: [] as Array<{ title: string; body: string; click?: () => void }>,
}));
vi.mock('electron', () => ({
  Notification: class {
    static isSupported = () => true;
    private readonly entry: { title: string; body: string; click?: () => void };
    constructor(o: { title: string; body: string }) {
      this.entry = { ...o };
    }
    on(event: string, fn: () => void) {
      if (event === 'click') this.entry.click = fn;
    }
    show() {
      shown.push(this.entry);
    }
  },
}));

const { notifyNewApproval } = await import('./notifications');

const approval = {
  id: 'a1',
  state: 'pending',
  vmId: 'web-1',
  clientAddress: '192.0.2.7',
} as unknown as ApprovalView;

function fakeWindow(visible: boolean, focused: boolean) {
  return { isDestroyed: () => false, isVisible: () => visible, isFocused: () => focused } as never;
}

beforeEach(() => {
  shown.length = 0;
});

describe('notifyNewApproval', () => {
  it('notifies when the window is hidden, unfocused or gone; the click shows the window', () => {
    const show = vi.fn();
    expect(notifyNewApproval(approval, fakeWindow(false, false), show)).toBe(true);
    expect(notifyNewApproval(approval, fakeWindow(true, false), show)).toBe(true);
    expect(notifyNewApproval(approval, undefined, show)).toBe(true);
    expect(shown).toHaveLength(3);
    expect(shown[0]!.body).toContain('web-1 from 192.0.2.7');
    shown[0]!.click!();
    expect(show).toHaveBeenCalledOnce();
  });

  it('stays quiet while the owner looks at the window, and for decided requests', () => {
    expect(notifyNewApproval(approval, fakeWindow(true, true), () => {})).toBe(false);
    const decided = { ...approval, state: 'approved' } as ApprovalView;
    expect(notifyNewApproval(decided, fakeWindow(false, false), () => {})).toBe(false);
    expect(shown).toHaveLength(0);
  });
});
