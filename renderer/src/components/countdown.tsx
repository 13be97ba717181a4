/** The time left until a deadline, updated every second; calls onExpire once when it reaches zero. */
import { useEffect, useState } from 'react';
import { formatCountdown } from '../lib/format';

export interface CountdownProps {
  /** ISO timestamp of the deadline. */
  until: string;
  label: string;
  now?: () => number;
}

/** A live countdown ("Automatic deny in 4:59"). */
export function Countdown({ until, label, now = Date.now }: CountdownProps) {
  const deadline = Date.parse(until);
  const [left, setLeft] = useState(() => (deadline - now()) / 1000);
  useEffect(() => {
    const tick = () => setLeft((deadline - now()) / 1000);
    tick();
    const t = setInterval(tick, 1000);
    return () => clearInterval(t);
  }, [deadline, now]);
  const text = Number.isNaN(deadline) ? '—' : formatCountdown(left);
  return (
    <span
      className={left <= 30 ? 'countdown urgent' : 'countdown'}
      role="timer"
      aria-label={`${label} ${text}`}
    >
      {label} <strong className="mono">{text}</strong>
    </span>
  );
}
