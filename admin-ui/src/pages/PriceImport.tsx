import { useState } from 'react';
import { api, errorText, type Model, type Provider, type Settings } from '../api';
import { plural } from '../format';
import { formatMoney, normalize, rateFromCost } from '../money';
import { parsePriceFile, PRICED, ratesFromCosts, type PriceEntry } from '../rates';
import { ErrorNote, Field, Modal, useAction } from '../ui';

const SHOWN = 300;

function invalidMargin(margin: string, price: string): string | null {
  try {
    rateFromCost('1', margin, price);
    return null;
  } catch (e) {
    return `Margin: ${errorText(e)}`;
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
  const [outcome, setOutcome] = useState<string[] | null>(null);
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
      setFileError(`Not a LiteLLM price file: ${errorText(e)}`);
    }
  }

  function importPicked() {
    void run(async () => {
      const lines: string[] = [];
      for (const e of (entries ?? []).filter((x) => picked.has(x.key))) {
        const body = { ...ratesOf(e), unit_costs: e.costs };
        const found = existing(e);
        try {
          if (found) await api(`/api/admin/models/${found.id}`, { method: 'PATCH', body });
          else
            await api('/api/admin/models', {
              body: { ...body, provider_id: providerId, model: e.model, type: e.type, max_output_tokens: e.max_output_tokens ?? undefined },
            });
          lines.push(`${found ? 'Updated' : 'Created'} ${e.model}`);
        } catch (err) {
          lines.push(`Failed ${e.model}: ${errorText(err)}`);
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
      <Modal title="Import finished" onClose={props.onDone}>
        <ul className="outcome">
          {outcome.map((l) => (
            <li key={l} className={l.startsWith('Failed') ? 'error' : undefined}>
              {l}
            </li>
          ))}
        </ul>
        <footer>
          <button type="button" className="primary" onClick={props.onDone}>
            Done
          </button>
        </footer>
      </Modal>
    );

  const shown = matching.slice(0, SHOWN);
  return (
    <Modal title="Import prices" onClose={props.onClose} wide>
      <p className="muted">
        A JSON file in LiteLLM&apos;s <code>model_prices_and_context_window.json</code> format. It is read in this browser; nothing is
        sent until you import.
      </p>
      <div className="grid3">
        <Field label="Price file">
          <input type="file" name="price_file" accept=".json,application/json" onChange={(e) => void load(e.target.files?.[0])} />
        </Field>
        <Field label="Into provider">
          <select name="provider" value={providerId} onChange={(e) => setProviderId(e.target.value)}>
            {props.providers.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Margin %" hint={`Credit price $${normalize(price)}`}>
          <input name="margin" inputMode="decimal" value={margin} onChange={(e) => setMargin(e.target.value)} />
        </Field>
      </div>
      <ErrorNote error={fileError} />
      {entries && (
        <>
          <div className="toolbar">
            <select aria-label="LiteLLM provider" value={source} onChange={(e) => setSource(e.target.value)}>
              <option value="">All LiteLLM providers</option>
              {sources.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
            <input type="search" placeholder="Search models" aria-label="Search models" value={search} onChange={(e) => setSearch(e.target.value)} />
            <button type="button" onClick={() => setPicked(new Set(shown.map((e) => e.key)))}>
              Select shown
            </button>
            <button type="button" onClick={() => setPicked(new Set())}>
              Clear
            </button>
          </div>
          <div className="scroll">
            <table className="compact">
              <thead>
                <tr>
                  <th />
                  <th>Model</th>
                  <th>Type</th>
                  <th />
                  {PRICED.map((p) => (
                    <th key={p.cost} className="num">
                      {p.label}
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
                        <input type="checkbox" aria-label={`Import ${e.key}`} checked={picked.has(e.key)} onChange={(x) => pick(e.key, x.target.checked)} />
                      </td>
                      <td>{e.model}</td>
                      <td>{e.type}</td>
                      <td>{existing(e) ? 'update' : 'new'}</td>
                      {PRICED.map((p) => (
                        <td key={p.cost} className="num" title={e.costs[p.cost] ? `cost $${e.costs[p.cost]}` : undefined}>
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
            {plural(matching.length, 'model')} {matching.length === 1 ? 'matches' : 'match'}{matching.length > SHOWN ? `, the first ${SHOWN} shown` : ''}. Rates in credits per million
            tokens (image per image, video per second, audio per second or, for speech, per million characters) at the margin above.
          </p>
        </>
      )}
      <ErrorNote error={marginError ?? error} />
      <footer>
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
        <button type="button" className="primary" disabled={busy || !picked.size || !providerId || !!marginError} onClick={importPicked}>
          {busy ? 'Importing…' : `Import ${plural(picked.size, 'model')}`}
        </button>
      </footer>
    </Modal>
  );
}
