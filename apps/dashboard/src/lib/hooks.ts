import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';

export interface Resource<T> {
  data: T | undefined;
  /** The last load's error (with data still shown when a refresh failed). */
  error: unknown;
  /** No data yet, first load running. */
  loading: boolean;
  /** A reload of data already shown is running. */
  refreshing: boolean;
  /** When the data shown was read (epoch ms). */
  loadedAt: number | null;
  refresh(): void;
}

/**
 * Data from the API for a view. `key` names what is loaded (path and query): a new key loads afresh
 * (no stale rows of another filter), `refresh()` reloads the same key and keeps the rows meanwhile.
 * A `null` key loads nothing.
 */
export function useResource<T>(key: string | null, load: (signal: AbortSignal) => Promise<T>): Resource<T> {
  const [state, setState] = useState<{
    key: string | null;
    data: T | undefined;
    error: unknown;
    running: boolean;
    loadedAt: number | null;
  }>({ key, data: undefined, error: undefined, running: key !== null, loadedAt: null });
  const [generation, setGeneration] = useState(0);
  const loader = useRef(load);
  useLayoutEffect(() => {
    loader.current = load;
  });

  // A new key: forget the old data at once, before painting.
  if (state.key !== key) {
    setState({ key, data: undefined, error: undefined, running: key !== null, loadedAt: null });
  }

  useEffect(() => {
    if (key === null) return;
    const abort = new AbortController();
    loader
      .current(abort.signal)
      .then((data) => {
        if (!abort.signal.aborted) {
          setState({ key, data, error: undefined, running: false, loadedAt: Date.now() });
        }
      })
      .catch((error: unknown) => {
        if (abort.signal.aborted || (error as Error)?.name === 'AbortError') return;
        setState((previous) => ({ ...previous, error, running: false }));
      });
    return () => abort.abort();
  }, [key, generation]);

  // A reload of the same key: mark it running here (a new key is marked while rendering, above).
  const refresh = useCallback(() => {
    setState((previous) =>
      previous.key === null || previous.running ? previous : { ...previous, running: true },
    );
    setGeneration((value) => value + 1);
  }, []);
  return {
    data: state.data,
    error: state.error,
    loading: state.running && state.data === undefined,
    refreshing: state.running && state.data !== undefined,
    loadedAt: state.loadedAt,
    refresh,
  };
}

/** The current time, updated every `intervalMs`: for "3 min ago" labels. */
export function useNow(intervalMs = 15_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), intervalMs);
    return () => window.clearInterval(timer);
  }, [intervalMs]);
  return now;
}

export function useDocumentTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · CloudLunacy` : 'CloudLunacy';
  }, [title]);
}

/** Runs `tick` every `intervalMs` while `active`. */
export function useInterval(tick: () => void, intervalMs: number, active = true): void {
  const latest = useRef(tick);
  useLayoutEffect(() => {
    latest.current = tick;
  });
  useEffect(() => {
    if (!active) return;
    const timer = window.setInterval(() => latest.current(), intervalMs);
    return () => window.clearInterval(timer);
  }, [intervalMs, active]);
}
