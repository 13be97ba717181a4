import { describe, expect, it } from 'vitest';
import {
  apiErrorOf,
  apiFromTransport,
  ApiError,
  encodeApiErrorMessage,
  EVENT_CHANNELS,
  eventMethodName,
  INVOKE_CHANNELS,
  invokeArgSchemas,
  isAllowedExternalUrl,
  isInvokeChannel,
} from './ipc';

describe('IPC contract', () => {
  it('names every channel feature:action', () => {
    for (const c of [...INVOKE_CHANNELS, ...EVENT_CHANNELS])
      expect(c).toMatch(/^[a-z][A-Za-z]*:[a-z][A-Za-z]*$/);
  });

  it('recognises only contract channels', () => {
    expect(isInvokeChannel('profiles:list')).toBe(true);
    expect(isInvokeChannel('toString')).toBe(false);
    expect(isInvokeChannel('fs:read')).toBe(false);
  });

  it('argument schemas apply defaults and reject wrong shapes', () => {
    const parsed = invokeArgSchemas['listener:configure'].parse([{ host: '127.0.0.1', port: 0, tls: false }]);
    expect(parsed[0].hostToken).toBe('keep');
    expect(invokeArgSchemas['approvals:decide'].safeParse(['a1', 'maybe']).success).toBe(false);
    expect(invokeArgSchemas['profiles:get'].safeParse(['../etc']).success).toBe(false);
    expect(invokeArgSchemas['profiles:list'].safeParse([1]).success).toBe(false);
    expect(invokeArgSchemas['events:list'].safeParse([]).success).toBe(true);
  });

  it('derives event method names', () => {
    expect(eventMethodName('approvals:changed')).toBe('onChanged');
    expect(eventMethodName('events:appended')).toBe('onAppended');
  });

  it('carries an error code through an Error message', () => {
    expect(apiErrorOf(new Error(encodeApiErrorMessage('keychain-locked', 'unlock it: now')))).toEqual({
      code: 'keychain-locked',
      message: 'unlock it: now',
    });
    expect(apiErrorOf(new ApiError('denied', 'no'))).toEqual({ code: 'denied', message: 'no' });
    expect(apiErrorOf(new Error('plain'))).toEqual({ code: 'internal', message: 'plain' });
  });

  it('allows only https URLs on the allow-list', () => {
    expect(isAllowedExternalUrl('https://libvirt.org/kbase/launch_security_sev.html')).toBe(true);
    expect(isAllowedExternalUrl('http://libvirt.org/')).toBe(false);
    expect(isAllowedExternalUrl('https://libvirt.org.evil.example/')).toBe(false);
    expect(isAllowedExternalUrl('https://user:pw@github.com/')).toBe(false);
    expect(isAllowedExternalUrl('file:///etc/passwd')).toBe(false);
    expect(isAllowedExternalUrl('javascript:alert(1)')).toBe(false);
  });
});

describe('apiFromTransport', () => {
  it('gives every request channel one method that sends its arguments, and every push channel its onX', () => {
    const sent: Array<[string, unknown[]]> = [];
    const subscribed: string[] = [];
    const api = apiFromTransport(
      (channel, ...args) => {
        sent.push([channel, args]);
        return Promise.resolve(undefined as never);
      },
      (channel) => {
        subscribed.push(channel);
        return () => {};
      },
    ) as unknown as Record<string, Record<string, (...a: unknown[]) => unknown>>;
    for (const channel of INVOKE_CHANNELS) {
      const [feature, action] = channel.split(':') as [string, string];
      void api[feature]![action]!('a', 2);
    }
    for (const channel of EVENT_CHANNELS) {
      const feature = channel.split(':')[0]!;
      api[feature]![eventMethodName(channel)]!(() => {});
    }
    expect(sent).toEqual(INVOKE_CHANNELS.map((c) => [c, ['a', 2]]));
    expect(subscribed).toEqual(EVENT_CHANNELS);
    // Nothing beyond the contract: each group holds exactly its channels' methods.
    const methods = Object.entries(api).flatMap(([f, g]) => Object.keys(g).map((m) => `${f}.${m}`));
    expect(methods).toHaveLength(INVOKE_CHANNELS.length + EVENT_CHANNELS.length);
  });
});
