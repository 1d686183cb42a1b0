import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  type ReactNode,
} from 'react';
import { currentBearer } from './api';
import { LiveConnection, type LiveChange, type LiveState } from './live';
import { useSession } from './session-context';

/** What a view hears: one event, or "everything may have changed" (after a stream started afresh). */
export type LiveSignal = { kind: 'change'; change: LiveChange } | { kind: 'resync' };
type Listener = (signal: LiveSignal) => void;

interface LiveValue {
  state: LiveState;
  subscribe(listener: Listener): () => void;
  retryNow(): void;
}

const LiveContext = createContext<LiveValue | null>(null);

const INITIAL: LiveState = {
  status: 'connecting',
  attempt: 0,
  retryAt: null,
  lastSequence: null,
  lastError: null,
  reconnects: 0,
};

export function LiveProvider({ children }: { children: ReactNode }) {
  const { signOut } = useSession();
  const [state, setState] = useState<LiveState>(INITIAL);
  const listeners = useRef(new Set<Listener>());
  const connection = useRef<LiveConnection | null>(null);

  useEffect(() => {
    const emit = (signal: LiveSignal) => {
      for (const listener of [...listeners.current]) listener(signal);
    };
    const live = new LiveConnection({
      token: currentBearer,
      onChange: (change) => emit({ kind: 'change', change }),
      onResync: () => emit({ kind: 'resync' }),
      onState: setState,
      onUnauthorized: (message) => signOut(/expired/i.test(message) ? 'expired' : 'rejected', message),
    });
    connection.current = live;
    live.start();
    return () => {
      live.stop();
      connection.current = null;
    };
  }, [signOut]);

  const subscribe = useCallback((listener: Listener) => {
    listeners.current.add(listener);
    return () => {
      listeners.current.delete(listener);
    };
  }, []);
  const retryNow = useCallback(() => connection.current?.retryNow(), []);
  const value = useMemo<LiveValue>(() => ({ state, subscribe, retryNow }), [state, subscribe, retryNow]);
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}

export function useLive(): LiveValue {
  const value = useContext(LiveContext);
  if (!value) throw new Error('useLive outside LiveProvider');
  return value;
}

/**
 * Calls `refresh` when a live event matching `matches` arrives (and after a resync), at most every
 * `waitMs`: a burst of events costs one reload.
 */
export function useLiveRefresh(matches: (change: LiveChange) => boolean, refresh: () => void, waitMs = 300) {
  const { subscribe } = useLive();
  const latest = useRef({ matches, refresh });
  useLayoutEffect(() => {
    latest.current = { matches, refresh };
  });
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const unsubscribe = subscribe((signal) => {
      if (signal.kind === 'change' && !latest.current.matches(signal.change)) return;
      if (timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        latest.current.refresh();
      }, waitMs);
    });
    return () => {
      unsubscribe();
      clearTimeout(timer);
    };
  }, [subscribe, waitMs]);
}
