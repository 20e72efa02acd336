import type { ComponentType } from 'react';
import { DatasetStage } from './DatasetStage.tsx';
import { DedupStage } from './DedupStage.tsx';
import { FilterStage } from './FilterStage.tsx';
import { TrainStage } from './TrainStage.tsx';
import { PredictStage } from './PredictStage.tsx';

export type StageId = 'dataset' | 'dedup' | 'filter' | 'train' | 'predict';

/** The pipeline's stages in order: the navigation tells the pipeline's story. */
export const stages: Array<{ id: StageId; title: string; component: ComponentType }> = [
  { id: 'dataset', title: 'Dataset', component: DatasetStage },
  { id: 'dedup', title: 'Dedup', component: DedupStage },
  { id: 'filter', title: 'Label & Filter', component: FilterStage },
  { id: 'train', title: 'Train', component: TrainStage },
  { id: 'predict', title: 'Predict', component: PredictStage },
];
