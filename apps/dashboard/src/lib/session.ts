/**
 * The admin's session: the bearer token pasted at sign-in, kept in sessionStorage (this tab only, gone
 * when the tab closes; never localStorage), until the token's `exp`, a 401 from the API, or sign-out.
 * The token's payload is decoded here only to read `exp` and the admin's name for display: the API
 * verifies the token on every request.
 */

const STORAGE_KEY = 'cloudlunacy.session';

export interface Session {
  token: string;
  /** The admin's name from the token (display only). */
  name: string;
  /** When the token expires, epoch milliseconds. */
  expiresAt: number;
}

export interface TokenClaims {
  exp?: number;
  kind?: string;
  name?: string;
  sub?: string;
}

/** Why the dashboard is back at sign-in: shown there. */
export type SignOutReason = 'signed-out' | 'expired' | 'rejected';

/** The JWT's payload, or null when the text is not a JWT (three base64url parts with a JSON middle). */
export function decodeClaims(token: string): TokenClaims | null {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((part) => !/^[A-Za-z0-9_-]+$/.test(part))) return null;
  try {
    const base64 = parts[1]!.replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return typeof claims === 'object' && claims !== null ? (claims as TokenClaims) : null;
  } catch {
    return null;
  }
}

/** What is wrong with a pasted token before asking the API, or null when it is worth asking. */
export function tokenProblem(token: string, now = Date.now()): string | null {
  if (token.length === 0) return 'Paste an admin token first.';
  const claims = decodeClaims(token);
  if (!claims) return 'This is not a token: an admin token has three parts separated by dots (eyJ….eyJ….…).';
  if (claims.kind === 'agent') {
    return "This is an agent's access token. The dashboard needs an admin token: run `npm run cli -- admin token create --name <you>` on the front server.";
  }
  if (typeof claims.exp !== 'number')
    return 'This token has no expiry time: it is not a CloudLunacy admin token.';
  if (claims.exp * 1000 <= now) {
    return `This token expired at ${new Date(claims.exp * 1000).toLocaleString()}. Create a new one with \`npm run cli -- admin token create --name <you>\`.`;
  }
  return null;
}

export function sessionOf(token: string): Session {
  const claims = decodeClaims(token) ?? {};
  return {
    token,
    name: claims.name ?? claims.sub ?? 'admin',
    expiresAt: (claims.exp ?? 0) * 1000,
  };
}

export function loadSession(now = Date.now()): Session | null {
  let raw: string | null = null;
  try {
    raw = sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
  if (!raw) return null;
  try {
    const stored = JSON.parse(raw) as Partial<Session>;
    if (typeof stored.token !== 'string' || typeof stored.expiresAt !== 'number') throw new Error('bad');
    if (stored.expiresAt <= now) {
      clearSession();
      return null;
    }
    return { token: stored.token, name: String(stored.name ?? 'admin'), expiresAt: stored.expiresAt };
  } catch {
    clearSession();
    return null;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
}

export function clearSession(): void {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // Storage disabled: nothing was kept.
  }
}
