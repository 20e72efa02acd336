import { Planned } from '../components/Planned.tsx';

export function PredictStage() {
  return (
    <div>
      <h1>Predict</h1>
      <p className="lead">Run a trained model on a folder of your own photos.</p>
      <Planned title="Predictions, crop panning and interventions">
        A grid of cards with the price-range distribution, median price, top make/models and year for each photo; a square crop
        panned along a wide photo; edited variants side by side.
      </Planned>
    </div>
  );
}
