/**
 * A secret shown once, right after it was created (an API key, a webhook endpoint's signing secret): the
 * warning, the secret in a read-only field, Copy (selecting the text when the browser blocks the
 * clipboard) and "I have stored it".
 */
import { type ReactNode, useId, useState } from 'react';

export function SecretOnce({
  warning,
  label,
  secret,
  onDone,
  testId,
  secretTestId,
}: {
  warning: ReactNode;
  label: string;
  secret: string;
  onDone(): void;
  testId: string;
  secretTestId: string;
}) {
  const id = useId();
  const [copied, setCopied] = useState<'no' | 'yes' | 'failed'>('no');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied('yes');
    } catch {
      (document.getElementById(id) as HTMLInputElement | null)?.select();
      setCopied('failed');
    }
  };
  return (
    <div className="secret-once" data-testid={testId}>
      <p className="alert alert-warn" role="alert">
        {warning}
      </p>
      <label htmlFor={id}>{label}</label>
      <div className="row">
        {/* Takes the focus when shown (it replaces the form whose button had it): selected, ready to copy,
            and the keyboard is where the secret is rather than at the top of the page. */}
        <input
          id={id}
          className="secret"
          // biome-ignore lint/a11y/noAutofocus: the secret replaces the focused form; see above
          autoFocus
          readOnly
          value={secret}
          onFocus={(event) => event.currentTarget.select()}
          data-testid={secretTestId}
        />
        <button type="button" className="primary" onClick={copy}>
          {copied === 'yes' ? 'Copied' : 'Copy'}
        </button>
        <button type="button" onClick={onDone}>
          I have stored it
        </button>
      </div>
      <p className="muted small" aria-live="polite">
        {copied === 'yes' && 'Copied to the clipboard.'}
        {copied === 'failed' &&
          'The browser blocked the clipboard: the secret is selected, press Ctrl+C (⌘C).'}
      </p>
    </div>
  );
}
