import { useState } from 'react';
import { api, errorText, type Model, type Provider, type Settings } from '../api';
import { t, tn } from '../i18n';
import { formatMoney, normalize, rateFromCost } from '../money';
import { parsePriceFile, PRICED, ratesFromCosts, TYPE_NAMES, type PriceEntry } from '../rates';
import { modelFromEntry } from '../setup';
import { ErrorNote, Field, Modal, useAction } from '../ui';

const SHOWN = 300;

function invalidMargin(margin: string, price: string): string | null {
  try {
    rateFromCost('1', margin, price);
    return null;
  } catch (e) {
    return t('import.badMargin', { error: errorText(e) });
  }
}

/** Imports rates from LiteLLM's price file: parsed here, previewed, then created or updated model by model. */
export function PriceImport(props: { models: Model[]; providers: Provider[]; settings: Settings; onClose(): void; onDone(): void }) {
  const [entries, setEntries] = useState<PriceEntry[] | null>(null);
  const [fileError, setFileError] = useState<string | null>(null);
  const [providerId, setProviderId] = useState(props.providers[0]?.id ?? '');
  const [source, setSource] = useState('');
  const [search, setSearch] = useState('');
  const [margin, setMargin] = useState(normalize(props.settings.margin_percent));
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [outcome, setOutcome] = useState<{ text: string; failed: boolean }[] | null>(null);
  const { busy, error, run } = useAction();
  const price = props.settings.credit_price_usd;
  const provider = props.providers.find((p) => p.id === providerId);
  const sources = [...new Set((entries ?? []).map((e) => e.provider))].sort();
  const matching = (entries ?? []).filter(
    (e) => (!source || e.provider === source) && e.key.toLowerCase().includes(search.toLowerCase()),
  );
  const existing = (e: PriceEntry) => props.models.find((m) => m.provider_id === providerId && m.model === e.model && m.type === e.type);

  const marginError = invalidMargin(margin, price);
  const ratesOf = (e: PriceEntry) => (marginError ? {} : ratesFromCosts(e.costs, margin, price));

  async function load(file: File | undefined) {
    if (!file) return;
    try {
      const parsed = parsePriceFile(await file.text());
      setEntries(parsed);
      setFileError(null);
      setPicked(new Set());
      const kinds = new Set(parsed.map((e) => e.provider));
      setSource(provider && kinds.has(provider.kind) ? provider.kind : '');
    } catch (e) {
      setFileError(t('import.notPriceFile', { error: errorText(e) }));
    }
  }

  function importPicked() {
    void run(async () => {
      const lines: { text: string; failed: boolean }[] = [];
      for (const e of (entries ?? []).filter((x) => picked.has(x.key))) {
        const body = { ...ratesOf(e), unit_costs: e.costs };
        const found = existing(e);
        try {
          if (found) await api(`/api/admin/models/${found.id}`, { method: 'PATCH', body });
          else await api('/api/admin/models', { body: modelFromEntry(e, providerId, margin, price) });
          lines.push({ text: t(found ? 'import.updated' : 'import.created', { model: e.model }), failed: false });
        } catch (err) {
          lines.push({ text: t('import.failed', { model: e.model, error: errorText(err) }), failed: true });
        }
      }
      setOutcome(lines);
    });
  }

  function pick(key: string, on: boolean) {
    const next = new Set(picked);
    if (on) next.add(key);
    else next.delete(key);
    setPicked(next);
  }

  if (outcome)
    return (
      <Modal title={t('import.finished')} onClose={props.onDone}>
        <ul className="outcome">
          {outcome.map((l) => (
            <li key={l.text} className={l.failed ? 'error' : undefined}>
              {l.text}
            </li>
          ))}
        </ul>
        <footer>
          <button type="button" className="primary" onClick={props.onDone}>
            {t('common.done')}
          </button>
        </footer>
      </Modal>
    );

  const shown = matching.slice(0, SHOWN);
  return (
    <Modal title={t('models.import')} onClose={props.onClose} wide>
      <p className="muted">{t('import.explain', { file: 'model_prices_and_context_window.json' })}</p>
      <div className="grid3">
        <Field label={t('import.file')}>
          <input type="file" name="price_file" accept=".json,application/json" onChange={(e) => void load(e.target.files?.[0])} />
        </Field>
        <Field label={t('import.intoProvider')}>
          <select name="provider" value={providerId} onChange={(e) => setProviderId(e.target.value)}>
            {props.providers.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('models.marginPercent')} hint={t('import.creditPrice', { price: normalize(price) })}>
          <input name="margin" inputMode="decimal" value={margin} onChange={(e) => setMargin(e.target.value)} />
        </Field>
      </div>
      <ErrorNote error={fileError} />
      {entries && (
        <>
          <div className="toolbar">
            <select aria-label={t('import.litellmProvider')} value={source} onChange={(e) => setSource(e.target.value)}>
              <option value="">{t('import.allProviders')}</option>
              {sources.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
            <input
              type="search"
              placeholder={t('import.search')}
              aria-label={t('import.search')}
              value={search}
              onChange={(e) => setSearch(e.target.value)}
            />
            <button type="button" onClick={() => setPicked(new Set(shown.map((e) => e.key)))}>
              {t('import.selectShown')}
            </button>
            <button type="button" onClick={() => setPicked(new Set())}>
              {t('import.clear')}
            </button>
          </div>
          <div className="scroll">
            <table className="compact">
              <thead>
                <tr>
                  <th />
                  <th>{t('call.model')}</th>
                  <th>{t('models.type')}</th>
                  <th />
                  {PRICED.map((p) => (
                    <th key={p.cost} className="num">
                      {t(p.label)}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {shown.map((e) => {
                  const rates = ratesOf(e);
                  return (
                    <tr key={e.key} data-entry={e.key}>
                      <td>
                        <input type="checkbox" aria-label={t('import.pick', { model: e.key })} checked={picked.has(e.key)} onChange={(x) => pick(e.key, x.target.checked)} />
                      </td>
                      <td>{e.model}</td>
                      <td>{t(TYPE_NAMES[e.type])}</td>
                      <td>{existing(e) ? t('import.update') : t('import.new')}</td>
                      {PRICED.map((p) => (
                        <td key={p.cost} className="num" title={e.costs[p.cost] ? t('import.costTitle', { cost: e.costs[p.cost]! }) : undefined}>
                          {rates[p.rate] === undefined ? '—' : formatMoney(rates[p.rate]!, { minDecimals: 2 })}
                        </td>
                      ))}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          <p className="muted">
            {matching.length > SHOWN ? tn('import.matchesFirst', matching.length, { shown: SHOWN }) : tn('import.matches', matching.length)}{' '}
            {t('import.ratesExplain')}
          </p>
        </>
      )}
      <ErrorNote error={marginError ?? error} />
      <footer>
        <button type="button" onClick={props.onClose}>
          {t('common.cancel')}
        </button>
        <button type="button" className="primary" disabled={busy || !picked.size || !providerId || !!marginError} onClick={importPicked}>
          {busy ? t('import.importing') : tn('import.submit', picked.size)}
        </button>
      </footer>
    </Modal>
  );
}
