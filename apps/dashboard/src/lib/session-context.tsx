import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { apiRequest, configureApi } from './api';
import {
  clearSession,
  loadSession,
  saveSession,
  sessionOf,
  tokenProblem,
  type Session,
  type SignOutReason,
} from './session';

interface SessionValue {
  session: Session | null;
  /** Why the last session ended (shown on the sign-in page), with the API's words when it gave any. */
  ended: { reason: SignOutReason; message?: string } | null;
  /** Checks the token with the API (`GET /agents`, admin only) and starts the session; throws why not. */
  signIn(token: string): Promise<void>;
  signOut(reason?: SignOutReason, message?: string): void;
}

const SessionContext = createContext<SessionValue | null>(null);

/** setTimeout takes at most 2^31-1 ms; a longer session is re-armed when that fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * The session ends this long before the token does, so that no request leaves with a token that expires
 * on its way (the API would answer 401 to a request the admin did not make).
 */
const EXPIRY_MARGIN_MS = 1_000;

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const [ended, setEnded] = useState<SessionValue['ended']>(null);

  const signOut = useCallback((reason: SignOutReason = 'signed-out', message?: string) => {
    clearSession();
    configureApi(null, () => undefined);
    setSession(null);
    setEnded({ reason, message });
  }, []);

  // Configure the client before children render, so their first requests carry the token.
  if (session) configureApi(session.token, (message) => signOut('rejected', message));

  // The session ends at the token's expiry (a second before), whatever the page is doing.
  useEffect(() => {
    if (!session) return;
    const endsAt = session.expiresAt - EXPIRY_MARGIN_MS;
    const remaining = endsAt - Date.now();
    const timer = window.setTimeout(
      () => (Date.now() >= endsAt ? signOut('expired') : setSession({ ...session })),
      Math.max(0, Math.min(remaining, MAX_TIMER_MS)),
    );
    return () => window.clearTimeout(timer);
  }, [session, signOut]);

  // Signing out in another tab of this session's origin does not reach this one (sessionStorage is per
  // tab); a page shown again from the back/forward cache re-reads storage.
  useEffect(() => {
    const onShow = () => {
      if (session && !loadSession()) signOut('expired');
    };
    window.addEventListener('pageshow', onShow);
    return () => window.removeEventListener('pageshow', onShow);
  }, [session, signOut]);

  const signIn = useCallback(async (raw: string) => {
    const token = raw.trim().replace(/^Bearer\s+/i, '');
    const problem = tokenProblem(token);
    if (problem) throw new Error(problem);
    await apiRequest('GET', '/agents', {}, token);
    const next = sessionOf(token);
    saveSession(next);
    setEnded(null);
    setSession(next);
  }, []);

  const value = useMemo(() => ({ session, ended, signIn, signOut }), [session, ended, signIn, signOut]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionValue {
  const value = useContext(SessionContext);
  if (!value) throw new Error('useSession outside SessionProvider');
  return value;
}
