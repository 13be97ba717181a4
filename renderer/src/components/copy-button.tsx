/** A button that copies a value to the clipboard and says so (or says why it could not). */
import { useState } from 'react';

export interface CopyButtonProps {
  value: string;
  /** What is copied, for the accessible name: "Copy owner token". */
  what: string;
  className?: string;
  /** Visible text when "Copy" alone would not say what (e.g. under a list: "Copy all digests"). */
  label?: string;
}

/** Copies `value`; the button text confirms for two seconds. */
export function CopyButton({ value, what, className, label }: CopyButtonProps) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  const copy = async () => {
    try {
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(value);
      setState('copied');
    } catch {
      setState('failed');
    }
    setTimeout(() => setState('idle'), 2000);
  };
  return (
    <>
      <button
        type="button"
        className={className ?? 'small'}
        onClick={() => void copy()}
        aria-label={label ?? `Copy ${what}`}
      >
        {state === 'copied'
          ? 'Copied'
          : state === 'failed'
            ? 'Copy failed: select and copy'
            : (label ?? 'Copy')}
      </button>
      <span className="visually-hidden" role="status">
        {state === 'copied' ? `${what} copied` : ''}
      </span>
    </>
  );
}
