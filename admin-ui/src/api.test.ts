import { describe, expect, it } from 'vitest';
import { requestInit } from './api';

describe('requestInit', () => {
  const key = { base: 'https://hub.example.com', auth: { kind: 'key', key: 'hub_k' } } as const;
  const session = { base: '', auth: { kind: 'session', csrf: 'tok' } } as const;

  it('sends a key as a bearer token, and no cookies', () => {
    expect(requestInit(key, 'POST', { 'content-type': 'application/json' })).toEqual({
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer hub_k' },
      credentials: 'omit',
    });
  });

  it('sends a session as its cookie, with the CSRF token on writes only', () => {
    for (const method of ['POST', 'PATCH', 'PUT', 'delete']) {
      expect(requestInit(session, method)).toEqual({ method, headers: { 'x-csrf-token': 'tok' }, credentials: 'same-origin' });
    }
    for (const method of ['GET', 'HEAD', 'OPTIONS']) {
      expect(requestInit(session, method)).toEqual({ method, headers: {}, credentials: 'same-origin' });
    }
  });

  it('sends nothing of anyone for the sign-in page', () => {
    expect(requestInit({ base: '', auth: { kind: 'none' } }, 'POST')).toEqual({ method: 'POST', headers: {}, credentials: 'omit' });
  });
});
