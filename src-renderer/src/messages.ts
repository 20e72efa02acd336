/**
 * What the studio says when a call to the engine fails, in the user's words: a title that names
 * what could not be done ("Could not load predictions") and a message without method names or
 * error class names. The engine's own message is kept when it is already addressed to the user
 * (it says what to fix), with any method name taken out.
 */

/** Titles for the calls whose failure a user is most likely to meet. */
const TITLES: Record<string, string> = {
  'workspace.info': 'Could not load the workspace',
  'stats.get': 'Could not load the workspace figures',
  'jobs.list': 'Could not load the jobs',
  'jobs.get': 'Could not load the job',
  'jobs.logs': 'Could not load the job log',
  'jobs.start': 'Could not start the job',
  'jobs.cancel': 'Could not stop the job',
  'jobs.resume': 'Could not resume the job',
  'jobs.kinds': 'Could not load the kinds of work',
  'listings.query': 'Could not load the listings',
  'listings.get': 'Could not load the listing',
  'dataset.facets': 'Could not load the dataset filters',
  'dataset.plots': 'Could not load the dataset plots',
  'scrape.errors': 'Could not load the scrape errors',
  'import.preview': 'Could not read that folder',
  'dedup.summary': 'Could not load the duplicate summary',
  'dedup.groups': 'Could not load the duplicate groups',
  'dedup.decide': 'Could not save that choice',
  'dedup.override': 'Could not save that choice',
  'dedup.keepBest': 'Could not keep the best copies',
  'dedup.acceptAll': 'Could not accept the groups',
  'filter.setLabel': 'Could not save the label',
  'filter.setLabels': 'Could not save the labels',
  'filter.setThreshold': 'Could not save the threshold',
  'filter.undo': 'Could not undo',
  'filter.redo': 'Could not redo',
  'runs.list': 'Could not load the training runs',
  'runs.get': 'Could not load the run',
  'runs.delete': 'Could not delete the run',
  'runs.metrics': 'Could not load the run’s curves',
  'runs.calibration': 'Could not load the calibration',
  'train.dataset': 'Could not load the training data summary',
  'train.metrics': 'Could not load the training curves',
  'predict.runs': 'Could not load the runs to predict with',
  'predict.start': 'Could not start the prediction',
  'predict.results': 'Could not load predictions',
  'predict.result': 'Could not load the prediction',
  'predict.sets': 'Could not load the prediction sets',
  'predict.export': 'Could not export the predictions',
  'predict.cropPan': 'Could not pan the crop',
  'predict.compare': 'Could not compare the photos',
  'study.occlusion': 'Could not make the occlusion map',
  'study.edit': 'Could not edit the region',
  'study.swap': 'Could not swap the background',
  'values.ranges': 'Could not load the value ranges',
  'values.setRanges': 'Could not save the value ranges',
  'eval.list': 'Could not load the evaluations',
  'eval.get': 'Could not load the evaluation',
};

/** What each area of the engine is about, for calls without a title of their own. */
const AREAS: Record<string, string> = {
  workspace: 'the workspace',
  stats: 'the workspace figures',
  jobs: 'the jobs',
  listings: 'the listings',
  dataset: 'the dataset',
  scrape: 'the scrape',
  import: 'the import',
  dedup: 'the duplicates',
  features: 'the features',
  filter: 'the photo filter',
  runs: 'the training runs',
  train: 'training',
  predict: 'predictions',
  study: 'the study',
  values: 'the value ranges',
  eval: 'the evaluation',
  fs: 'the folder',
};

/** Read-only calls: their failure is "could not load". */
const READS = /^(list|get|query|info|state|summary|groups|results?|runs|sets|curve|meter|near|queue|labels|facets|plots|ranges|coverage|extractors|kinds|logs|errors|metrics|dataset|calibration|thumbnail|image|preview|nearCount)/;


/** The title of a toast for a failed call: what could not be done, never the method's name. */
export function failureTitle(method: string): string {
  const known = TITLES[method];
  if (known) return known;
  const [area = '', verb = ''] = method.split('.');
  const what = AREAS[area] ?? 'that';
  return READS.test(verb) ? `Could not load ${what}` : `Could not update ${what}`;
}

/** Error names that mean the engine could not be reached (the connection banner covers them). */
export const CONNECTION_ERRORS = new Set(['ConnectionError']);

/**
 * The body of a toast for a failed call: the engine's message without method names, parameter
 * paths or error class names, or a plain sentence for failures that are not the user's to fix.
 */
export function failureMessage(e: unknown, method?: string): string {
  const name = e instanceof Error ? e.name : '';
  const raw = e instanceof Error ? e.message : String(e);
  if (CONNECTION_ERRORS.has(name)) return 'The studio cannot reach its engine right now; it keeps retrying.';
  if (name === 'ProtocolError' || name === 'InternalError') return 'The engine ran into an unexpected problem; the details are in its log. Try again.';
  if (name === 'Forbidden') return 'The studio is no longer signed in to this engine: open the address that `carstudio serve` printed.';
  const text = cleanEngineMessage(raw, method);
  return text.trim() || 'Something went wrong; try again.';
}

/**
 * An engine message made fit for the user: "invalid parameters for <method>: ..." says which
 * values were not accepted instead, and no method name is left in it.
 */
export function cleanEngineMessage(raw: string, method?: string): string {
  let text = raw.replace(/^invalid parameters for [^:]+:\s*/i, 'Some values were not accepted: ');
  if (method) text = text.split(method).join('this request');
  const methodName = new RegExp(`\\b(?:${Object.keys(AREAS).join('|')})\\.[a-z][a-zA-Z]+\\b`, 'g');
  return text.replace(methodName, (m) => (/\.(jpe?g|png|webp|csv|json|db|heic|txt)$/i.test(m) ? m : 'this request'));
}
