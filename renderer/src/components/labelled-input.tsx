import type { InputHTMLAttributes, ReactNode } from 'react';

/** An input with its label wrapped around it (the label is its accessible name). */
export function LabelledInput({
  label,
  ...input
}: { label: ReactNode } & InputHTMLAttributes<HTMLInputElement>) {
  return (
    <label>
      {label}
      <input {...input} />
    </label>
  );
}
