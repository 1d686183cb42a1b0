import { useEffect, useId, useRef, type ReactNode } from 'react';
import { describeError } from '../lib/api';
import { formatDateTime, formatRelative } from '../lib/format';
import { useNow } from '../lib/hooks';

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="state state-empty">{children}</p>;
}

/** An error that says what happened, and a way to try again. */
export function ErrorMessage({
  error,
  title = 'Could not load this',
  onRetry,
}: {
  error: unknown;
  title?: string;
  onRetry?: () => void;
}) {
  return (
    <div className="state state-error" role="alert">
      <strong>{title}.</strong> {describeError(error)}
      {onRetry && (
        <button type="button" className="button-link" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

/** A part of the API this installation does not serve yet. */
export function NotAvailable({ what, endpoint }: { what: string; endpoint: string }) {
  return (
    <div className="state state-unavailable" role="note">
      <strong>{what}: not available yet.</strong> This API does not serve <code>{endpoint}</code> yet; the
      dashboard shows it as soon as it does.
    </div>
  );
}

export function Time({ value, relative = false }: { value: string | null | undefined; relative?: boolean }) {
  const now = useNow();
  if (!value) return <span className="muted">—</span>;
  return (
    <time dateTime={value} title={formatDateTime(value)}>
      {relative ? formatRelative(value, now) : formatDateTime(value)}
    </time>
  );
}

const STATUS_TONE: Record<string, string> = {
  active: 'good',
  online: 'good',
  'in-sync': 'good',
  installed: 'good',
  issued: 'info',
  resolved: 'good',
  done: 'good',
  pending: 'warn',
  enrolled: 'info',
  retrying: 'warn',
  degraded: 'warn',
  failed: 'bad',
  succeeded: 'good',
  serving: 'good',
  reverting: 'warn',
  cancelled: 'muted',
  abandoned: 'bad',
  offline: 'bad',
  unreachable: 'bad',
  stale: 'muted',
  dismissed: 'muted',
  open: 'bad',
  expired: 'bad',
  revoked: 'muted',
  superseded: 'muted',
  removed: 'muted',
  deregistered: 'muted',
};

export function StatusBadge({ status }: { status: string | null | undefined }) {
  const text = status ?? 'unknown';
  return <span className={`badge badge-${STATUS_TONE[text] ?? 'info'}`}>{text}</span>;
}

/** A modal dialog (native <dialog>: focus stays inside, Escape closes, focus returns afterwards). */
export function Dialog({
  open,
  title,
  onClose,
  children,
  wide = false,
}: {
  open: boolean;
  title: string;
  onClose: () => void;
  children: ReactNode;
  wide?: boolean;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog
      ref={ref}
      className={wide ? 'dialog dialog-wide' : 'dialog'}
      aria-labelledby={titleId}
      onClose={onClose}
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
    >
      {open && (
        <>
          <header className="dialog-header">
            <h2 id={titleId}>{title}</h2>
            <button type="button" className="button-icon" aria-label="Close" onClick={onClose}>
              ×
            </button>
          </header>
          <div className="dialog-body">{children}</div>
        </>
      )}
    </dialog>
  );
}

export function Pager({
  offset,
  limit,
  total,
  onChange,
  label,
}: {
  offset: number;
  limit: number;
  total: number;
  onChange: (offset: number) => void;
  label: string;
}) {
  if (total <= limit && offset === 0) return null;
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(offset + limit, total);
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <span>
        {first}–{last} of {total}
      </span>
      <button type="button" disabled={offset === 0} onClick={() => onChange(Math.max(0, offset - limit))}>
        ← Previous
      </button>
      <button type="button" disabled={last >= total} onClick={() => onChange(offset + limit)}>
        Next →
      </button>
    </nav>
  );
}

/** A section of a page with its heading, and actions beside it. */
export function Section({
  title,
  actions,
  children,
  id,
}: {
  title: string;
  actions?: ReactNode;
  children: ReactNode;
  id?: string;
}) {
  const headingId = useId();
  return (
    <section className="panel" aria-labelledby={headingId} id={id}>
      <div className="panel-header">
        <h2 id={headingId}>{title}</h2>
        {actions && <div className="panel-actions">{actions}</div>}
      </div>
      {children}
    </section>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="page-header">
      <h1 tabIndex={-1}>{title}</h1>
      {children && <div className="page-actions">{children}</div>}
    </div>
  );
}

/** "Updated 12:03:04" with a refreshing hint, for data that follows the live stream. */
export function Freshness({ loadedAt, refreshing }: { loadedAt: number | null; refreshing: boolean }) {
  if (!loadedAt) return null;
  return (
    <span className="freshness muted" aria-live="off">
      {refreshing ? 'Updating…' : `Updated ${new Date(loadedAt).toLocaleTimeString('en-GB')}`}
    </span>
  );
}

export function JsonView({ value, label }: { value: unknown; label: string }) {
  return (
    <pre className="json" tabIndex={0} aria-label={label}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}
