import { useState } from 'react';
import { api, type BelowCostAction, type CatalogueFormat, type Settings, type SyncReport } from '../api';
import { t } from '../i18n';
import { normalize } from '../money';
import { ErrorNote, Field, Modal, useAction } from '../ui';

const FORMATS: CatalogueFormat[] = ['litellm', 'openrouter'];
const ACTIONS: BelowCostAction[] = ['flag', 'disable', 'reprice'];

/** Syncs cost rates from a price catalogue (a URL Hub fetches, or a file read here), and the settings of the scheduled sync and the margin floor. */
export function PriceSync(props: { settings: Settings; onClose(): void; onDone(): void }) {
  const s = props.settings;
  const [format, setFormat] = useState<CatalogueFormat>(s.price_sync_format);
  const [url, setUrl] = useState(s.price_sync_url ?? '');
  const [file, setFile] = useState<File | null>(null);
  const [interval, setHours] = useState(String(s.price_sync_interval_hours));
  const [floor, setFloor] = useState(s.margin_floor_percent === null ? '' : normalize(s.margin_floor_percent));
  const [action, setAction] = useState<BelowCostAction>(s.below_cost_action);
  const [report, setReport] = useState<SyncReport | null>(null);
  const { busy, error, run } = useAction();

  function syncNow() {
    void run(async () => {
      const source = file ? { catalogue: JSON.parse(await file.text()) as unknown } : { url: url.trim() };
      setReport(await api<SyncReport>('/api/admin/prices/sync', { body: { format, ...source } }));
    });
  }

  function save() {
    void run(async () => {
      await api('/api/admin/settings', {
        method: 'PATCH',
        body: {
          price_sync_format: format,
          price_sync_url: url.trim() || null,
          price_sync_interval_hours: /^\d+$/.test(interval.trim()) ? Number(interval.trim()) : interval,
          margin_floor_percent: floor.trim() || null,
          below_cost_action: action,
        },
      });
      props.onDone();
    });
  }

  const flagged = report?.matched.filter((m) => m.below_cost || m.disabled || m.repriced.length) ?? [];

  return (
    <Modal title={t('sync.title')} onClose={props.onClose} wide>
      <p className="muted">{t('sync.explain')}</p>
      <div className="grid3">
        <Field label={t('sync.format')}>
          <select name="format" value={format} onChange={(e) => setFormat(e.target.value as CatalogueFormat)}>
            {FORMATS.map((f) => (
              <option key={f} value={f}>
                {t(`sync.format.${f}`)}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('sync.url')} hint={t('sync.urlHint')}>
          <input name="url" type="url" value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://openrouter.ai/api/v1/models" />
        </Field>
        <Field label={t('sync.file')}>
          <input name="file" type="file" accept=".json,application/json" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        </Field>
      </div>
      <button type="button" className="primary" disabled={busy || (!file && !url.trim())} onClick={syncNow}>
        {t('sync.now')}
      </button>
      {report && (
        <div role="status" className="sync-report">
          <p>{t('sync.report', { matched: report.matched.length, entries: report.entries, unmatched: report.unmatched.length })}</p>
          {flagged.length > 0 && (
            <ul>
              {flagged.map((m) => (
                <li key={m.id}>
                  <strong>{m.name}</strong>:{' '}
                  {m.repriced.length ? t('sync.repriced', { fields: m.repriced.join(', ') }) : m.disabled ? t('sync.disabled') : t('models.belowCost')}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <h3>{t('sync.settings')}</h3>
      <div className="grid3">
        <Field label={t('sync.interval')} hint={t('sync.intervalHint')}>
          <input name="price_sync_interval_hours" inputMode="numeric" value={interval} onChange={(e) => setHours(e.target.value)} />
        </Field>
        <Field label={t('sync.floor')} hint={t('sync.floorHint')}>
          <input name="margin_floor_percent" inputMode="decimal" value={floor} onChange={(e) => setFloor(e.target.value)} />
        </Field>
        <Field label={t('sync.action')}>
          <select name="below_cost_action" value={action} onChange={(e) => setAction(e.target.value as BelowCostAction)}>
            {ACTIONS.map((a) => (
              <option key={a} value={a}>
                {t(`sync.action.${a}`)}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <ErrorNote error={error} />
      <footer>
        <button type="button" onClick={props.onClose}>
          {report ? t('common.close') : t('common.cancel')}
        </button>
        <button type="button" className="primary" disabled={busy} onClick={save}>
          {t('common.save')}
        </button>
      </footer>
    </Modal>
  );
}
