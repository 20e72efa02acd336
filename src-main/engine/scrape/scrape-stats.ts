import { addStats } from '../stats.ts';

/** `stats.scrape`: what the host guard refused (recorded as failures with a `refused: ...` reason). */
addStats('scrape', (db) => {
  const n = (sql: string): number => (db.prepare(sql).get() as { n: number }).n;
  return {
    imagesRefused: n(`SELECT COUNT(*) n FROM images WHERE state = 'failed' AND fail_reason LIKE 'refused:%'`),
    pagesRefused: n(`SELECT COUNT(*) n FROM attempts WHERE outcome = 'failed' AND reason LIKE 'refused:%'`),
  };
});
