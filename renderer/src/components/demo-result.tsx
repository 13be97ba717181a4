/**
 * The outcome of a demo run (`demo:run`), shared by the first-run screen and the Live requests demo
 * panel: a release in the screen's own words, or the refusal code and the runner's explanation.
 */
import type { ReactNode } from 'react';
import type { DemoRunResult } from '../../../app/contract/ipc';

/** The message as a sentence: capital first letter, no final period (the caller adds it). */
function sentence(message: string): string {
  const m = message.replace(/\.$/, '');
  return m.charAt(0).toUpperCase() + m.slice(1);
}

export function DemoResult({
  result,
  testId,
  releasedText,
  children,
}: {
  result: DemoRunResult;
  testId: string;
  /** What a release means on this screen. */
  releasedText: string;
  /** Extra lines (the caller decides for which outcomes). */
  children?: ReactNode;
}) {
  const released = result.outcome === 'released';
  return (
    <div className={released ? 'success' : 'warning'} role="status" data-testid={testId}>
      <p>
        {released
          ? releasedText
          : result.outcome === 'refused'
            ? `${sentence(result.message)}${result.code ? ` (${result.code})` : ''}.`
            : `The demo failed: ${result.message.replace(/\.$/, '')}.`}
      </p>
      {children}
    </div>
  );
}
