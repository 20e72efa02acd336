import { useState, type CSSProperties } from 'react';
import type { FilterCar as Car } from '../../../src-main/engine/api/contract/index.ts';
import { boxInCover } from './car-box-geometry.ts';

const pct = (v: number) => `${(100 * v).toFixed(2)}%`;

/**
 * A thumbnail (`.thumb`, the photo shown with object-fit: cover) with the car the detector found
 * drawn over it as an outlined rectangle, mapped to the part of the photo the thumbnail shows once
 * the photo's size is known; a "no car" badge when the detector found none. Without car-v1
 * features (`car` null) it is a plain thumbnail.
 */
export function CarThumb({ src, car, className, title, testid }: { src: string; car: Car | null; className?: string; title?: string; testid?: string }) {
  const [aspects, setAspects] = useState<{ photo: number; frame: number } | null>(null);
  const shown = car?.box && aspects ? boxInCover(car.box, aspects.photo, aspects.frame) : null;
  const detail = car
    ? car.hasCar
      ? `car ${(100 * car.score).toFixed(0)}% sure`
      : car.box
        ? `no car (best guess ${(100 * car.score).toFixed(0)}% sure)`
        : 'no car found'
    : null;
  const style: CSSProperties | undefined = shown
    ? {
        position: 'absolute',
        left: pct(shown.x1),
        top: pct(shown.y1),
        width: pct(shown.x2 - shown.x1),
        height: pct(shown.y2 - shown.y1),
        border: `2px ${car!.hasCar ? 'solid' : 'dashed'} ${car!.hasCar ? '#ffd23f' : 'rgba(255,255,255,0.7)'}`,
        boxShadow: '0 0 0 1px rgba(0,0,0,0.6)',
        borderRadius: 2,
        pointerEvents: 'none',
        boxSizing: 'border-box',
      }
    : undefined;
  return (
    <div className={`thumb ${className ?? ''}`} title={[title, detail].filter(Boolean).join(' · ')} data-testid={testid} data-car={car ? (car.hasCar ? 'car' : 'none') : ''}>
      <img
        src={src}
        alt=""
        loading="lazy"
        onLoad={(e) => {
          const img = e.currentTarget;
          if (img.naturalWidth && img.naturalHeight && img.clientWidth && img.clientHeight) {
            setAspects({ photo: img.naturalWidth / img.naturalHeight, frame: img.clientWidth / img.clientHeight });
          }
        }}
      />
      {style && <div data-testid="car-box" data-score={car!.score.toFixed(3)} style={style} />}
      {car && !car.hasCar && (
        <span
          data-testid="no-car"
          style={{ position: 'absolute', left: 4, bottom: 4, padding: '1px 6px', borderRadius: 4, fontSize: 11, background: 'rgba(0,0,0,0.7)', color: '#fff', pointerEvents: 'none' }}
        >
          no car
        </span>
      )}
    </div>
  );
}
