import { useEffect, useState } from 'react';
import { api } from '../api/client.ts';

/** Thumbnails already fetched, by size and path (the photos live outside the image store). */
const cache = new Map<string, string>();

/**
 * A 4:3 thumbnail of a photo on the engine's machine (`predict.thumbnail`, which the path policy
 * checks), cropped to fill its box; an empty box while it loads or when it cannot be read.
 */
export function PhotoThumb({ path, size = 240 }: { path: string; size?: number }) {
  const [url, setUrl] = useState<string | null>(cache.get(`${size}:${path}`) ?? null);
  useEffect(() => {
    const k = `${size}:${path}`;
    if (cache.has(k)) return setUrl(cache.get(k)!);
    let live = true;
    api
      .request('predict.thumbnail', { path, size })
      .then((t) => {
        cache.set(k, t.dataUrl);
        if (live) setUrl(t.dataUrl);
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [path, size]);
  return url ? <img className="predict-thumb" src={url} alt="" style={{ aspectRatio: '4 / 3', objectFit: 'cover' }} /> : <div className="predict-thumb predict-thumb-empty" />;
}
