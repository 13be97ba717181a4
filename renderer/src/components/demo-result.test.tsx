// @vitest-environment jsdom
/** A refused demo reads as one sentence with the code once; "internal" is never shown as a code. */
import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import '../test-utils';
import { DemoResult } from './demo-result';
import { ErrorMessage } from './error-message';
import { ApiError } from '../../../app/contract/ipc';

describe('wording', () => {
  it('a refusal: one sentence, the code once', () => {
    render(
      <DemoResult
        testId="r"
        releasedText="released"
        result={{
          outcome: 'refused',
          code: 'denied',
          message: 'the listener refused the launch: the owner denied this launch',
        }}
      />,
    );
    expect(screen.getByTestId('r')).toHaveTextContent(
      /^The listener refused the launch: the owner denied this launch \(denied\)\.$/,
    );
  });

  it('an error with the internal code shows no "(internal)"', () => {
    render(
      <ErrorMessage error={new ApiError('internal', 'this is not a bundle file')} prefix="Import failed" />,
    );
    expect(screen.getByRole('alert')).toHaveTextContent(/^Import failed: this is not a bundle file$/);
  });
});
