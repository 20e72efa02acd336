import { useEffect, useState, type ComponentType } from 'react';
import { ToastProvider } from './toasts.tsx';
import { JobsPanel } from './components/JobsPanel.tsx';
import { DemoBanner } from './components/DemoBanner.tsx';
import { useConnection, useQuery } from './hooks.ts';
import type { ConnectionState } from '../../src-main/engine/api/contract/index.ts';
import { stages, type StageId } from './stages/index.ts';

function currentStage(): StageId {
  const id = location.hash.replace(/^#\/?/, '').split('?')[0] as StageId;
  return stages.some((s) => s.id === id) ? id : 'dataset';
}

export function App() {
  return (
    <ToastProvider>
      <Shell />
    </ToastProvider>
  );
}

function Shell() {
  const [stage, setStage] = useState<StageId>(currentStage());
  const connection = useConnection();
  const info = useQuery('workspace.info', {});
  useEffect(() => {
    const onHash = () => setStage(currentStage());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const Stage: ComponentType = stages.find((s) => s.id === stage)!.component;
  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">CarStudio</div>
        <div className="workspace" title={info.data?.dir}>
          {info.data ? (
            <>
              {info.data.isDemo && <span className="badge badge-demo">demo</span>} {info.data.dir}
            </>
          ) : (
            '…'
          )}
        </div>
        <div className={`conn conn-${connection}`} data-testid="connection" data-state={connection}>
          <span className="dot" /> {connection === 'open' ? 'connected' : connection === 'connecting' ? 'connecting…' : 'disconnected — retrying'}
        </div>
      </header>
      <nav className="nav" aria-label="Pipeline stages">
        {stages.map((s, i) => (
          <a key={s.id} href={`#/${s.id}`} className={s.id === stage ? 'active' : ''} aria-current={s.id === stage ? 'page' : undefined} data-testid={`nav-${s.id}`}>
            <span className="step">{i + 1}</span> {s.title}
          </a>
        ))}
      </nav>
      <main className="stage" data-testid={`stage-${stage}`}>
        <div className="banners">
          <ConnectionBanner state={connection} />
          <DemoBanner isDemo={info.data?.isDemo ?? false} />
        </div>
        <Stage />
      </main>
      <JobsPanel />
    </div>
  );
}

/**
 * One banner while the engine cannot be reached (instead of a toast per failed call); the client
 * reconnects on its own and the stages keep what they show, reloading when it is back.
 */
function ConnectionBanner({ state }: { state: ConnectionState }) {
  if (state !== 'closed') return null;
  return (
    <div className="banner banner-warn" role="alert" data-testid="connection-banner">
      <strong>Lost the connection to the engine.</strong> Retrying every few seconds; nothing is lost, and the stage keeps what it shows until the engine is back.
    </div>
  );
}
