import { Planned } from '../components/Planned.tsx';

export function TrainStage() {
  return (
    <div>
      <h1>Train</h1>
      <p className="lead">A multi-task price model: price range, median price, make/model and year.</p>
      <Planned title="Runs and live curves">
        Start a run (heads on cached features, or a full fine-tune where a native TensorFlow backend is present), watch train and
        test loss and accuracy per head live, overlay runs to compare loss presets, resume from checkpoints.
      </Planned>
    </div>
  );
}
