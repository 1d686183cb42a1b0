import { useState, type FormEvent, type ReactNode } from 'react';
import { describeError } from '../lib/api';
import { Dialog } from './common';
import { Field } from './field';

/**
 * A dialog for an action that cannot be undone: what it does, any extra fields, an optional free-text
 * field (the reason or detail sent with it), and the API's error when it is refused. The text and the
 * error are forgotten when the dialog closes or the action succeeds.
 */
export function DangerDialog({
  open,
  title,
  description,
  textLabel,
  action,
  busyAction,
  onClose,
  run,
  children,
}: {
  open: boolean;
  title: string;
  description: ReactNode;
  /** The free-text field's label; without one, the dialog has no such field. */
  textLabel?: string;
  action: string;
  busyAction: string;
  onClose: () => void;
  /** Does the action with the trimmed text ('' when none); a rejection is shown in the dialog. */
  run: (text: string) => Promise<void>;
  children?: ReactNode;
}) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const close = () => {
    setText('');
    setError(null);
    onClose();
  };
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await run(text.trim());
      setText('');
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} title={title} onClose={close}>
      <form onSubmit={submit}>
        <p>{description}</p>
        {error !== null && (
          <p className="notice notice-error" role="alert">
            {describeError(error)}
          </p>
        )}
        {children}
        {textLabel && (
          <Field label={textLabel}>
            {(props) => (
              <input
                {...props}
                value={text}
                maxLength={200}
                onChange={(event) => setText(event.target.value)}
              />
            )}
          </Field>
        )}
        <div className="form-actions">
          <button type="button" onClick={close}>
            Cancel
          </button>
          <button type="submit" className="button-danger" disabled={busy}>
            {busy ? busyAction : action}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
