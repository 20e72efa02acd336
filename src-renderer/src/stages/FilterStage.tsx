import { Planned } from '../components/Planned.tsx';

export function FilterStage() {
  return (
    <div>
      <h1>Label &amp; Filter</h1>
      <p className="lead">Throw out wheels, dashboards, interiors and placeholders before training.</p>
      <Planned title="Labelling and the junk filter">
        A keyboard-first labelling grid (good / bad / skip / undo), MobileNetV2 or CLIP features, an RBF SVM with 10-fold
        cross-validation, and a threshold slider with a live false-negative meter.
      </Planned>
    </div>
  );
}
