import { Planned } from '../components/Planned.tsx';

export function DedupStage() {
  return (
    <div>
      <h1>Dedup</h1>
      <p className="lead">Listing sites reuse photos; duplicates teach the model nothing true about a car's price.</p>
      <Planned title="Duplicate groups">
        The original's exact perceptual hash (16×16 Lanczos, 4 bits a channel, aspect byte, SHA-256) and a 64-bit near-duplicate
        hash with a distance slider; the largest groups side by side with the listings they come from; keep/drop overrides.
      </Planned>
    </div>
  );
}
