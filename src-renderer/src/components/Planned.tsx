import type { ReactNode } from 'react';

/** Says what a stage will hold once its capability lands; shows no made-up data. */
export function Planned({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section className="card planned" data-testid="planned">
      <h3>{title}</h3>
      <div className="muted">{children}</div>
    </section>
  );
}
