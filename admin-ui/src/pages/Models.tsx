import { useState, type FormEvent } from 'react';
import { ROUTING_NAMES, ROUTINGS, type Routing } from '../aliases';
import { api, ApiError, listAll, MODEL_TYPES, type Model, type ModelType, type Page, type Provider, type RateChange, type Settings, type UnitCosts } from '../api';
import { t, tn } from '../i18n';
import { formatMoney, marginOf, normalize, type Decimal } from '../money';
import { PRICED, pricedFor, ratesFromCosts, TYPE_NAMES, unitOf, type RateField } from '../rates';
import { Badge, ErrorNote, Field, LoadError, Modal, MoreButton, Toggle, useAction, useDebounced, useLoad, usePaged } from '../ui';
import { formatTime } from '../time';
import { PriceImport } from './PriceImport';
import { PriceSync } from './PriceSync';

const rate = (v: Decimal | null) => (v === null ? '—' : formatMoney(v, { minDecimals: 2 }));

/** Each sell rate and its cost rate (credits per million), where Hub knows the cost. */
const COST_RATES = [
  ['input_rate', 'cost_input_rate'],
  ['output_rate', 'cost_output_rate'],
  ['cache_read_rate', 'cost_cache_read_rate'],
  ['cache_write_rate', 'cost_cache_write_rate'],
  ['input_rate_above_200k', 'cost_input_rate_above_200k'],
  ['output_rate_above_200k', 'cost_output_rate_above_200k'],
] as const;

/** The margins of a model's rates over its costs (the cost rates Hub keeps, else the unit costs typed in), as `"20%"` or `"18–25%"`. */
function margins(m: Model, creditPrice: Decimal): string {
  const synced = COST_RATES.flatMap(([sell, cost]) => {
    const c = m[cost];
    const r = m[sell] ?? m[sell.replace('_above_200k', '') as 'input_rate'];
    const margin = c !== null && r !== null ? marginOf(r, c, '1') : null;
    return margin === null ? [] : [Number(margin)];
  });
  const typed = PRICED.flatMap(({ cost, rate: field }) => {
    const c = m.unit_costs?.[cost];
    const r = m[field];
    const margin = c !== undefined && r !== null ? marginOf(r, c, creditPrice) : null;
    return margin === null ? [] : [Number(margin)];
  });
  const found = m.cost_input_rate !== null ? synced : typed;
  if (!found.length) return '—';
  const [lo, hi] = [Math.min(...found), Math.max(...found)];
  return lo === hi ? `${lo}%` : `${lo}–${hi}%`;
}

type Dialog = { kind: 'edit'; model: Model | null } | { kind: 'import' } | { kind: 'margin' } | { kind: 'sync' };

/** A page of models at a time, searched by Hub (provider/model, any case) a moment after typing stops. */
export function Models() {
  const [search, setSearch] = useState('');
  const q = useDebounced(search.trim());
  const models = usePaged((cursor) => api<Page<Model>>('/api/admin/models', { query: { cursor, q: q || undefined } }), [q]);
  const providers = useLoad(() => api<Page<Provider>>('/api/admin/providers').then((r) => r.data), []);
  const settings = useLoad(() => api<Settings>('/api/admin/settings'), []);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [dialog, setDialog] = useState<Dialog | null>(null);
  const toggle = useAction();
  const ready = providers.data && settings.data;
  // An import matches every model of Hub, so it loads them all when opened.
  const everyModel = useLoad(() => (dialog?.kind === 'import' ? listAll<Model>('/api/admin/models') : Promise.resolve(null)), [dialog?.kind]);
  const shown = models.items;

  function setEnabled(m: Model, enabled: boolean) {
    void toggle.run(async () => {
      await api(`/api/admin/models/${m.id}`, { method: 'PATCH', body: { enabled } });
      models.reload();
    });
  }

  function pick(id: string, on: boolean) {
    const next = new Set(selected);
    if (on) next.add(id);
    else next.delete(id);
    setSelected(next);
  }

  const done = () => {
    setDialog(null);
    models.reload();
  };

  return (
    <>
      <div className="toolbar">
        <h1>{t('nav.models')}</h1>
        <input
          type="search"
          placeholder={t('models.filter')}
          value={search}
          onChange={(e) => setSearch(e.target.value)}
          aria-label={t('models.filter')}
        />
        <button type="button" onClick={() => setDialog({ kind: 'margin' })} disabled={!ready || !selected.size}>
          {t('models.setMargin', { n: selected.size })}
        </button>
        <button type="button" onClick={() => setDialog({ kind: 'import' })} disabled={!ready}>
          {t('models.import')}
        </button>
        <button type="button" onClick={() => setDialog({ kind: 'sync' })} disabled={!ready}>
          {t('sync.title')}
        </button>
        <button type="button" className="primary" onClick={() => setDialog({ kind: 'edit', model: null })} disabled={!ready || !providers.data?.length}>
          {t('models.add')}
        </button>
      </div>
      <p className="muted">
        {t('models.ratesExplain')}
        {settings.data && ` ${t('models.creditCosts', { price: normalize(settings.data.credit_price_usd) })}`}
      </p>
      <ErrorNote error={models.error} />
      <ErrorNote error={toggle.error} />
      <table>
        <thead>
          <tr>
            <th>
              <input
                type="checkbox"
                aria-label={t('models.selectAll')}
                checked={shown.length > 0 && shown.every((m) => selected.has(m.id))}
                onChange={(e) => setSelected(new Set(e.target.checked ? shown.map((m) => m.id) : []))}
              />
            </th>
            <th>{t('call.model')}</th>
            <th className="num">{t('rates.input')}</th>
            <th className="num">{t('rates.output')}</th>
            <th className="num">{t('rates.cacheRead')}</th>
            <th className="num">{t('rates.cacheWrite')}</th>
            <th className="num">{t('models.imageVideo')}</th>
            <th className="num">{t('models.cost')}</th>
            <th className="num">{t('models.margin')}</th>
            <th>{t('providers.enabled')}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {shown.length === 0 && !models.loading && (
            <tr>
              <td colSpan={11} className="muted">
                {t('models.none')}
              </td>
            </tr>
          )}
          {shown.map((m) => (
            <tr key={m.id} data-model={m.name ?? m.model}>
              <td>
                <input type="checkbox" aria-label={t('models.select', { name: m.name ?? m.model })} checked={selected.has(m.id)} onChange={(e) => pick(m.id, e.target.checked)} />
              </td>
              <td>
                <strong>{m.name ?? m.model}</strong> {m.type !== 'chat' && <Badge tone="muted">{t(TYPE_NAMES[m.type])}</Badge>}{' '}
                {m.below_cost && <Badge tone="bad">{t('models.belowCost')}</Badge>}{' '}
                {m.input_rate_above_200k !== null && (
                  <Badge tone="muted">{t('models.tier', { tokens: m.long_context_threshold ?? 200000, input: rate(m.input_rate_above_200k), output: rate(m.output_rate_above_200k) })}</Badge>
                )}
              </td>
              <td className="num">{rate(m.input_rate)}</td>
              <td className="num">{rate(m.output_rate)}</td>
              <td className="num">{m.cache_read_rate === null ? <span className="muted">{t('models.asInput')}</span> : rate(m.cache_read_rate)}</td>
              <td className="num">{m.cache_write_rate === null ? <span className="muted">{t('models.asInput')}</span> : rate(m.cache_write_rate)}</td>
              <td className="num">
                {m.type === 'image'
                  ? t('models.perImage', { rate: rate(m.image_rate) })
                  : m.type === 'video'
                    ? t('models.perSecond', { rate: rate(m.video_rate) })
                    : m.type === 'transcription'
                      ? t('models.perSecond', { rate: rate(m.audio_rate) })
                      : m.type === 'speech'
                        ? t('models.perMillionChars', { rate: rate(m.audio_rate) })
                        : '—'}
              </td>
              <td className="num">{m.cost_input_rate === null ? '—' : `${rate(m.cost_input_rate)} / ${rate(m.cost_output_rate)}`}</td>
              <td className="num">{settings.data ? margins(m, settings.data.credit_price_usd) : ''}</td>
              <td>
                <Toggle quiet label={t('providers.enabledOf', { name: m.name ?? m.model })} checked={m.enabled} onChange={(v) => setEnabled(m, v)} disabled={toggle.busy} />
              </td>
              <td className="actions">
                <button type="button" onClick={() => setDialog({ kind: 'edit', model: m })}>
                  {t('common.edit')}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <MoreButton list={models} />
      {ready && dialog?.kind === 'edit' && (
        <ModelForm model={dialog.model} providers={providers.data!} settings={settings.data!} onClose={() => setDialog(null)} onSaved={done} />
      )}
      {ready && dialog?.kind === 'margin' && (
        <BulkMargin
          models={models.items.filter((m) => selected.has(m.id))}
          settings={settings.data!}
          onClose={() => setDialog(null)}
          onDone={done}
        />
      )}
      {ready && dialog?.kind === 'sync' && (
        <PriceSync
          settings={settings.data!}
          onClose={() => {
            setDialog(null);
            models.reload();
          }}
          onDone={() => {
            done();
            settings.reload();
          }}
        />
      )}
      {ready && dialog?.kind === 'import' && everyModel.data && (
        <PriceImport models={everyModel.data} providers={providers.data!} settings={settings.data!} onClose={() => setDialog(null)} onDone={done} />
      )}
    </>
  );
}

type RateInputs = Record<RateField, string>;
type CostInputs = Record<keyof UnitCosts, string>;

const text = (v: Decimal | null | undefined) => (v === null || v === undefined ? '' : normalize(v));
const decimalOrNull = (s: string) => (s.trim() === '' ? null : s.trim());

function ModelForm(props: { model: Model | null; providers: Provider[]; settings: Settings; onClose(): void; onSaved(): void }) {
  const m = props.model;
  const [providerId, setProviderId] = useState(m?.provider_id ?? props.providers[0].id);
  const [name, setName] = useState(m?.model ?? '');
  const [type, setType] = useState<ModelType>(m?.type ?? 'chat');
  const [maxOutput, setMaxOutput] = useState(m?.max_output_tokens?.toString() ?? '');
  const [contextWindow, setContextWindow] = useState(m?.context_window?.toString() ?? '');
  const [routing, setRouting] = useState<Routing>(m?.routing ?? 'priority');
  const [enabled, setEnabled] = useState(m?.enabled ?? true);
  const [rates, setRates] = useState<RateInputs>({
    input_rate: text(m?.input_rate),
    output_rate: text(m?.output_rate),
    cache_read_rate: text(m?.cache_read_rate),
    cache_write_rate: text(m?.cache_write_rate),
    cache_write_1h_rate: text(m?.cache_write_1h_rate),
    image_rate: text(m?.image_rate),
    video_rate: text(m?.video_rate),
    audio_rate: text(m?.audio_rate),
  });
  const [costs, setCosts] = useState<CostInputs>({
    input: text(m?.unit_costs?.input),
    output: text(m?.unit_costs?.output),
    cache_read: text(m?.unit_costs?.cache_read),
    cache_write: text(m?.unit_costs?.cache_write),
    cache_write_1h: text(m?.unit_costs?.cache_write_1h),
    image: text(m?.unit_costs?.image),
    audio: text(m?.unit_costs?.audio),
    video: text(m?.unit_costs?.video),
  });
  const [margin, setMargin] = useState(normalize(props.settings.margin_percent));
  const { busy, error, run } = useAction();
  const [belowFloor, setBelowFloor] = useState(false);
  const price = props.settings.credit_price_usd;
  const fields = PRICED.filter((p) => pricedFor(p.cost, type));

  function applyMargin() {
    void run(async () => {
      const filled = Object.fromEntries(Object.entries(costs).filter(([, v]) => v.trim() !== ''));
      setRates({ ...rates, ...ratesFromCosts(filled, margin, price) });
    });
  }

  function marginNote(field: RateField, cost: keyof UnitCosts): string {
    try {
      const c = costs[cost].trim();
      const r = rates[field].trim();
      const value = c && r ? marginOf(r, c, price) : null;
      return value === null ? '' : t('models.marginNote', { margin: value });
    } catch {
      return '';
    }
  }

  function submit(e: FormEvent, force = false) {
    e.preventDefault();
    void run(async () => {
      const unitCosts = Object.fromEntries(Object.entries(costs).flatMap(([k, v]) => (v.trim() ? [[k, v.trim()]] : [])));
      const body = {
        model: name.trim(),
        type,
        input_rate: decimalOrNull(rates.input_rate) ?? '0',
        output_rate: decimalOrNull(rates.output_rate) ?? '0',
        cache_read_rate: decimalOrNull(rates.cache_read_rate),
        cache_write_rate: decimalOrNull(rates.cache_write_rate),
        cache_write_1h_rate: decimalOrNull(rates.cache_write_1h_rate),
        image_rate: decimalOrNull(rates.image_rate) ?? '0',
        video_rate: decimalOrNull(rates.video_rate) ?? '0',
        audio_rate: decimalOrNull(rates.audio_rate) ?? '0',
        max_output_tokens: maxOutput.trim() ? Number(maxOutput) : null,
        unit_costs: Object.keys(unitCosts).length ? unitCosts : null,
        // The window is the model's own field; one kept in its metadata moves there.
        metadata: withoutContextWindow(m?.metadata ?? null),
        context_window: contextWindow.trim() ? Number(contextWindow) : null,
        routing,
        enabled,
        ...(force ? { force: true } : {}),
      };
      try {
        if (m) await api(`/api/admin/models/${m.id}`, { method: 'PATCH', body });
        else await api('/api/admin/models', { body: { ...body, provider_id: providerId } });
      } catch (err) {
        // Below the margin floor: the admin may save it anyway.
        setBelowFloor(err instanceof ApiError && err.message.includes('"force": true'));
        throw err;
      }
      props.onSaved();
    });
  }

  function remove() {
    if (!m || !confirm(t('models.confirmDelete', { name: m.name ?? m.model }))) return;
    void run(async () => {
      await api(`/api/admin/models/${m.id}`, { method: 'DELETE' });
      props.onSaved();
    });
  }

  return (
    <Modal title={m ? t('users.editTitle', { name: m.name ?? m.model }) : t('models.add')} onClose={props.onClose} wide>
      <form onSubmit={submit}>
        <div className="grid3">
          <Field label={t('call.provider')}>
            <select name="provider_id" value={providerId} disabled={!!m} onChange={(e) => setProviderId(e.target.value)}>
              {props.providers.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </Field>
          <Field label={t('call.model')} hint={t('models.modelHint')}>
            <input name="model" value={name} required onChange={(e) => setName(e.target.value)} placeholder="gpt-4o-mini" />
          </Field>
          <Field label={t('models.type')}>
            <select name="type" value={type} onChange={(e) => setType(e.target.value as ModelType)}>
              {MODEL_TYPES.map((mt) => (
                <option key={mt} value={mt}>
                  {t(TYPE_NAMES[mt])}
                </option>
              ))}
            </select>
          </Field>
        </div>
        <h3>{t('models.ratesAndCosts')}</h3>
        <table className="compact">
          <thead>
            <tr>
              <th />
              <th>{t('models.sellRate')}</th>
              <th>{t('models.providerCost')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {fields.map(({ cost, rate: field, label }) => (
              <tr key={field}>
                <td>
                  {t(label)} <small className="muted">{unitOf(cost, type)}</small>
                </td>
                <td>
                  <input
                    name={field}
                    inputMode="decimal"
                    aria-label={t('models.rateOf', { what: t(label) })}
                    value={rates[field]}
                    placeholder={
                      field === 'cache_write_1h_rate' ? t('models.asCacheWrite') : field.startsWith('cache') ? t('models.asInput') : '0'
                    }
                    onChange={(e) => setRates({ ...rates, [field]: e.target.value })}
                  />
                </td>
                <td>
                  <input
                    name={`cost_${cost}`}
                    inputMode="decimal"
                    aria-label={t('models.costOf', { what: t(label) })}
                    value={costs[cost]}
                    onChange={(e) => setCosts({ ...costs, [cost]: e.target.value })}
                  />
                </td>
                <td className="muted">{marginNote(field, cost)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <div className="calculator">
          <Field label={t('models.marginPercent')}>
            <input name="margin" inputMode="decimal" value={margin} onChange={(e) => setMargin(e.target.value)} />
          </Field>
          <p className="muted">{t('models.formula', { price: normalize(price) })}</p>
          <button type="button" onClick={applyMargin}>
            {t('models.fromCosts')}
          </button>
        </div>
        <div className="grid3">
          <Field label={t('models.maxOutput')} hint={t('models.maxOutputHint')}>
            <input name="max_output_tokens" type="number" min={1} value={maxOutput} onChange={(e) => setMaxOutput(e.target.value)} />
          </Field>
          <Field label={t('models.contextWindow')} hint={t('models.contextWindowHint')}>
            <input name="context_window" type="number" min={1} value={contextWindow} onChange={(e) => setContextWindow(e.target.value)} />
          </Field>
          <Field label={t('aliases.routing')} hint={t('models.routingHint')}>
            <select name="routing" value={routing} onChange={(e) => setRouting(e.target.value as Routing)}>
              {ROUTINGS.map((r) => (
                <option key={r} value={r}>
                  {t(ROUTING_NAMES[r])}
                </option>
              ))}
            </select>
          </Field>
        </div>
        <Toggle label={t('providers.enabled')} checked={enabled} onChange={setEnabled} />
        {m && <CostsAndHistory model={m} />}
        <ErrorNote error={error} />
        <footer>
          {belowFloor && (
            <button type="button" className="danger" disabled={busy} onClick={(e) => submit(e, true)}>
              {t('models.saveAnyway')}
            </button>
          )}
          {m && (
            <button type="button" className="danger left" onClick={remove}>
              {t('common.delete')}
            </button>
          )}
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {m ? t('common.save') : t('models.add')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}

/** A model's synced costs, its long-context tier and every change of its rates. */
function CostsAndHistory({ model: m }: { model: Model }) {
  const history = useLoad(() => api<Page<RateChange>>(`/api/admin/models/${m.id}/rate-history?limit=100`), [m.id]);
  const shown = (v: Decimal | null) => (v === null ? '—' : rate(v));
  return (
    <section aria-label={t('models.history')}>
      {m.cost_input_rate !== null && (
        <p className="muted">
          {t('models.synced', {
            input: shown(m.cost_input_rate),
            output: shown(m.cost_output_rate),
            source: m.price_source ?? t('models.byAdmin'),
            window: m.context_window ?? '—',
          })}
        </p>
      )}
      {m.below_cost && <p className="error">{t('models.belowCostExplain')}</p>}
      <h3>{t('models.history')}</h3>
      <LoadError state={history} />
      {history.data && (
        <table className="compact">
          <thead>
            <tr>
              <th>{t('models.historyWhen')}</th>
              <th>{t('models.historyRate')}</th>
              <th className="num">{t('models.historyOld')}</th>
              <th className="num">{t('models.historyNew')}</th>
              <th>{t('models.historyWho')}</th>
            </tr>
          </thead>
          <tbody>
            {history.data.data.length === 0 && (
              <tr>
                <td colSpan={5} className="muted">
                  {t('models.historyNone')}
                </td>
              </tr>
            )}
            {history.data.data.map((c, i) => (
              <tr key={i}>
                <td>{formatTime(c.created_at)}</td>
                <td>
                  <code>{c.field}</code>
                </td>
                <td className="num">{shown(c.old)}</td>
                <td className="num">{shown(c.new)}</td>
                <td>{c.source === 'sync' ? t('models.bySync') : (c.actor ?? t('models.byAdmin'))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function BulkMargin(props: { models: Model[]; settings: Settings; onClose(): void; onDone(): void }) {
  const [margin, setMargin] = useState(normalize(props.settings.margin_percent));
  const { busy, error, run } = useAction();
  const price = props.settings.credit_price_usd;
  let plan: { model: Model; rates: ReturnType<typeof ratesFromCosts> }[] = [];
  let invalid: string | null = null;
  try {
    plan = props.models.map((model) => ({ model, rates: ratesFromCosts(model.unit_costs ?? {}, margin, price) }));
  } catch (e) {
    invalid = e instanceof Error ? e.message : String(e);
  }

  function apply() {
    void run(async () => {
      for (const { model, rates } of plan) {
        if (Object.keys(rates).length) await api(`/api/admin/models/${model.id}`, { method: 'PATCH', body: rates });
      }
      props.onDone();
    });
  }

  return (
    <Modal title={tn('models.bulkTitle', props.models.length)} onClose={props.onClose} wide>
      <div className="calculator">
        <Field label={t('models.marginPercent')}>
          <input name="margin" inputMode="decimal" value={margin} onChange={(e) => setMargin(e.target.value)} autoFocus />
        </Field>
        <p className="muted">{t('models.bulkFormula', { price: normalize(price) })}</p>
      </div>
      <ErrorNote error={invalid} />
      <table className="compact">
        <thead>
          <tr>
            <th>{t('call.model')}</th>
            {PRICED.map((p) => (
              <th key={p.rate} className="num">
                {t(p.label)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {plan.map(({ model, rates }) => (
            <tr key={model.id}>
              <td>{model.name}</td>
              {Object.keys(rates).length === 0 ? (
                <td colSpan={PRICED.length} className="muted">
                  {t('models.noCosts')}
                </td>
              ) : (
                PRICED.map((p) => (
                  <td key={p.rate} className="num">
                    {rates[p.rate] === undefined ? '—' : `${rate(model[p.rate])} → ${rate(rates[p.rate]!)}`}
                  </td>
                ))
              )}
            </tr>
          ))}
        </tbody>
      </table>
      <ErrorNote error={error} />
      <footer>
        <button type="button" onClick={props.onClose}>
          {t('common.cancel')}
        </button>
        <button type="button" className="primary" disabled={busy || !!invalid} onClick={apply}>
          {t('models.updateRates')}
        </button>
      </footer>
    </Modal>
  );
}

/** A model's metadata without a context window (which the model keeps in its own field). */
function withoutContextWindow(metadata: Record<string, unknown> | null): Record<string, unknown> | null {
  const rest = Object.fromEntries(Object.entries(metadata ?? {}).filter(([k]) => k !== 'context_window' && k !== 'max_input_tokens'));
  return Object.keys(rest).length ? rest : null;
}
