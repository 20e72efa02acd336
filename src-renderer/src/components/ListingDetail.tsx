import { useEffect } from 'react';
import { api } from '../api/client.ts';
import { useQuery } from '../hooks.ts';
import { fmtInt, fmtPrice } from '../format.ts';

/** A listing's fields and all its photos in a modal (Escape or a click outside closes it). */
export function ListingDetailPanel({ id, version, onClose }: { id: number; version: number; onClose: () => void }) {
  const detail = useQuery('listings.get', { id }, [version]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') onClose();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);
  const d = detail.data && detail.data.id === id ? detail.data : null;
  const fields: Array<[string, string, string]> = d
    ? [
        ['price', 'Price', fmtPrice(d.price)],
        ['make', 'Make', d.make ?? '—'],
        ['model', 'Model', d.model ?? '—'],
        ['year', 'Year', d.year != null ? String(d.year) : '—'],
        ['odometer', 'Odometer', d.odometer != null ? `${fmtInt(d.odometer)} mi` : '—'],
        ['engine', 'Engine', d.engine ?? '—'],
        ['exteriorColor', 'Exterior', d.exteriorColor ?? '—'],
        ['interiorColor', 'Interior', d.interiorColor ?? '—'],
        ['driveType', 'Drive', d.driveType ?? '—'],
        ['fuelType', 'Fuel', d.fuelType ?? '—'],
        ['fuelEconomy', 'Fuel economy', d.fuelEconomy.join(' / ') || '—'],
        ['vin', 'VIN', d.vin ?? '—'],
        ['stockNumber', 'Stock #', d.stockNumber ?? '—'],
        ['owners', 'Seller', d.owners.map((o) => [o.name, o.id ? `#${o.id}` : null].filter(Boolean).join(' ')).join(', ') || '—'],
        ['source', 'Source', d.source],
        ['listingId', 'Listing id', `${d.source} ${d.listingId}`],
        ['scrapedAt', 'Scraped', new Date(d.scrapedAt).toLocaleString()],
      ]
    : [];
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div
        className="modal"
        role="dialog"
        aria-modal="true"
        aria-label="Listing detail"
        onClick={(e) => e.stopPropagation()}
        data-testid="listing-detail"
        data-id={id}
      >
        <div className="modal-head">
          <h2 data-testid="detail-title">{d ? (d.title ?? `Listing ${d.listingId}`) : 'Loading…'}</h2>
          <button className="link" onClick={onClose} aria-label="Close" data-testid="detail-close">
            ✕
          </button>
        </div>
        {d && (
          <>
            <table className="detail-fields">
              <tbody>
                {fields.map(([key, label, value]) => (
                  <tr key={key} data-testid={`detail-${key}`}>
                    <th>{label}</th>
                    <td>{value}</td>
                  </tr>
                ))}
                <tr>
                  <th>Page</th>
                  <td>
                    <a href={d.url} target="_blank" rel="noreferrer noopener">
                      {d.url}
                    </a>
                  </td>
                </tr>
              </tbody>
            </table>
            {d.description && (
              <p className="detail-description" data-testid="detail-description">
                {d.description}
              </p>
            )}
            <h3>
              Photos <span className="muted small">({d.images.length}, in the listing's order)</span>
            </h3>
            <div className="detail-images" data-testid="detail-images">
              {d.images.map((img) => (
                <figure
                  key={img.position}
                  className={`detail-image detail-image-${img.state}`}
                  data-testid={`detail-image-${img.state}`}
                  title={img.url}
                >
                  {img.state === 'stored' ? (
                    <img src={api.imageUrl(img.key)} alt={`photo ${img.position + 1}`} />
                  ) : (
                    <div className="detail-image-missing">
                      <strong>{img.state === 'failed' ? 'failed' : 'pending'}</strong>
                      {img.failReason && <span>{img.failReason}</span>}
                    </div>
                  )}
                  <figcaption className="muted small">
                    {img.position + 1}
                    {img.width && img.height ? ` · ${img.width}×${img.height}` : ''}
                  </figcaption>
                </figure>
              ))}
              {d.images.length === 0 && <p className="muted">This listing has no photos.</p>}
            </div>
          </>
        )}
      </div>
    </div>
  );
}
