import { useEffect, useRef, useState } from 'react';

/**
 * A destructive action asked for twice: its button ("Revoke") opens a confirmation that says what follows
 * ("Apps using it stop at once.") with "<verb> now" and "Cancel". A failure is shown beside it, as an alert.
 *
 * @example
 * <ConfirmAction verb="Revoke" busyVerb="Revoking" target={key.name} consequence="Apps using it stop at once."
 *   busy={fetching} onConfirm={async () => errorOf(await revoke({ id: key.id }))} />
 */
export function ConfirmAction({
  verb,
  busyVerb,
  target,
  consequence,
  busy,
  onConfirm,
}: {
  verb: string;
  /** Shown on the confirming button while `busy` ("Revoking" gives "Revoking…"), and in its legend. */
  busyVerb: string;
  /** What the action is done to, for screen readers ("Revoke CI"). */
  target: string;
  consequence: string;
  busy: boolean;
  /** Does the action; resolves with the message to show when it failed, else null (the confirmation closes). */
  onConfirm(): Promise<string | null>;
}) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // Each button replaces the other: the focus follows, to Cancel (the harmless choice: pressing Enter twice
  // does not destroy anything) and back to the action once the confirmation closes.
  const action = useRef<HTMLButtonElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const toggled = useRef(false);
  useEffect(() => {
    if (!toggled.current) return;
    (confirming ? cancel : action).current?.focus();
  }, [confirming]);
  const toggle = (next: boolean) => {
    toggled.current = true;
    setConfirming(next);
  };
  return (
    <>
      {confirming ? (
        <fieldset className="confirm">
          <legend className="visually-hidden">
            Confirm {busyVerb.toLowerCase()} {target}
          </legend>
          <span className="small">{consequence}</span>
          <button
            type="button"
            className="danger"
            disabled={busy}
            onClick={async () => {
              const failure = await onConfirm();
              setError(failure);
              if (failure === null) toggle(false);
            }}
          >
            {busy ? `${busyVerb}…` : `${verb} now`}
          </button>
          <button ref={cancel} type="button" className="ghost" onClick={() => toggle(false)}>
            Cancel
          </button>
        </fieldset>
      ) : (
        <button ref={action} type="button" className="danger" onClick={() => toggle(true)}>
          {verb}
          <span className="visually-hidden"> {target}</span>
        </button>
      )}
      {error && (
        <span className="field-error small" role="alert">
          {error}
        </span>
      )}
    </>
  );
}
