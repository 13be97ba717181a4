// @vitest-environment jsdom
import { useState } from 'react';
import { describe, expect, it, vi } from 'vitest';
import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { PolicyEditor, policyForScheme, policyProblem } from './policy-editor';
import type { Scheme } from '../../../app/profile';

function Harness({
  initial,
  scheme,
  onPolicy,
}: {
  initial: number;
  scheme: Scheme;
  onPolicy?: (n: number) => void;
}) {
  const [policy, setPolicy] = useState(initial);
  return (
    <>
      <PolicyEditor
        policy={policy}
        scheme={scheme}
        onChange={(n) => {
          setPolicy(n);
          onPolicy?.(n);
        }}
      />
      <output data-testid="value">{policy}</output>
    </>
  );
}

const value = () => Number(screen.getByTestId('value').textContent);

describe('PolicyEditor', () => {
  it('shows each flag as a labelled switch with its explanation, and the hex', () => {
    renderWithQuery(<Harness initial={0x5} scheme="amd-sev-es" />);
    const noDebug = screen.getByRole('switch', { name: /No debugging/ });
    expect(noDebug).toBeChecked();
    expect(noDebug).toHaveAccessibleDescription(/debug commands/);
    expect(screen.getByRole('switch', { name: /No key sharing/ })).not.toBeChecked();
    expect(screen.getByRole('switch', { name: /SEV-ES required/ })).toBeChecked();
    expect(screen.getAllByRole('switch')).toHaveLength(6);
    expect(screen.getByLabelText('Policy (hex)')).toHaveValue('0x0005');
    expect(screen.getByText(/Resulting policy: 0x0005/)).toBeInTheDocument();
  });

  it('switch → hex: turning on "No migration" sets bit 3', async () => {
    const user = userEvent.setup();
    render(<Harness initial={0x1} scheme="amd-sev" />);
    await user.click(screen.getByRole('switch', { name: /No migration/ }));
    expect(value()).toBe(0x9);
    expect(screen.getByLabelText('Policy (hex)')).toHaveValue('0x0009');
    await user.click(screen.getByRole('switch', { name: /No debugging/ }));
    expect(value()).toBe(0x8);
    expect(screen.getByText(/Debugging is allowed/)).toBeInTheDocument();
  });

  it('hex → switches: typing 0x0033 updates every switch', async () => {
    const user = userEvent.setup();
    render(<Harness initial={0x1} scheme="amd-sev" />);
    const hex = screen.getByLabelText('Policy (hex)');
    await user.clear(hex);
    await user.type(hex, '0x0033');
    expect(value()).toBe(0x33);
    expect(screen.getByRole('switch', { name: /No debugging/ })).toBeChecked();
    expect(screen.getByRole('switch', { name: /No key sharing/ })).toBeChecked();
    expect(screen.getByRole('switch', { name: /No migration/ })).not.toBeChecked();
    expect(screen.getByRole('switch', { name: /Same domain only/ })).toBeChecked();
    expect(screen.getByRole('switch', { name: /SEV platforms only/ })).toBeChecked();
    expect(hex).toHaveValue('0x0033');
  });

  it('minimum API fields write bits 16-31', async () => {
    const user = userEvent.setup();
    render(<Harness initial={0x1} scheme="amd-sev" />);
    const major = screen.getByLabelText('Minimum firmware API major');
    await user.clear(major);
    await user.type(major, '18');
    expect(value()).toBe(0x00120001);
    expect(screen.getByLabelText('Policy (hex)')).toHaveValue('0x00120001');
  });

  it('refuses reserved bits 6-15 with a message and keeps the last valid policy', async () => {
    const user = userEvent.setup();
    const onPolicy = vi.fn();
    render(<Harness initial={0x1} scheme="amd-sev" onPolicy={onPolicy} />);
    const hex = screen.getByLabelText('Policy (hex)');
    await user.clear(hex);
    await user.paste('0x0041');
    expect(screen.getByRole('alert')).toHaveTextContent(/Bits 6-15 are reserved/);
    expect(hex).toHaveAttribute('aria-invalid', 'true');
    expect(onPolicy).not.toHaveBeenCalledWith(0x41);
    expect(value()).not.toBe(0x41);
    expect(policyProblem('0x8000', 'amd-sev').problem).toMatch(/reserved/);
    expect(policyProblem('nonsense', 'amd-sev').problem).toMatch(/0x-hex/);
  });

  it('ties the ES bit to the scheme', async () => {
    const user = userEvent.setup();
    const { rerender } = render(<Harness initial={0x1} scheme="amd-sev" />);
    const es = screen.getByRole('switch', { name: /SEV-ES required/ });
    expect(es).toBeDisabled();
    expect(es).not.toBeChecked();
    expect(es).toHaveAccessibleDescription(/Follows the scheme/);
    const hex = screen.getByLabelText('Policy (hex)');
    await user.clear(hex);
    await user.paste('0x0005');
    expect(screen.getByRole('alert')).toHaveTextContent(/ES bit \(0x4\) is set but the scheme is SEV/);
    expect(value()).toBe(0x1);
    rerender(<Harness initial={0x5} scheme="amd-sev-es" />);
    expect(policyProblem('0x0001', 'amd-sev-es').problem).toMatch(/must be set/);
    expect(policyForScheme(0x1, 'amd-sev-es')).toBe(0x5);
    expect(policyForScheme(0x5, 'amd-sev')).toBe(0x1);
  });
});
