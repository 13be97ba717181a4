/** The title and one-line purpose at the top of every screen. */
import type { ReactNode } from 'react';

export function ScreenHeader({
  title,
  children,
  actions,
}: {
  title: string;
  children?: ReactNode;
  actions?: ReactNode;
}) {
  return (
    <header className="screen-header">
      <div>
        <h1 id="screen-title">{title}</h1>
        {children && <p>{children}</p>}
      </div>
      {actions && <div className="actions">{actions}</div>}
    </header>
  );
}
