// The steps that fill the demo workspace on first start, in pipeline order (see demo.ts).
import './scrape/demo-step.ts';
import './train/demo-step.ts';
