import { useState, type FormEvent } from 'react';
import { ROUTING_NAMES, ROUTINGS, type Routing } from '../aliases';
import { api, listAll, MODEL_TYPES, type Model, type ModelType, type Page, type Provider, type Settings, type UnitCosts } from '../api';
import { t, tn } from '../i18n';
import { formatMoney, marginOf, normalize, type Decimal } from '../money';
import { PRICED, pricedFor, ratesFromCosts, TYPE_NAMES, unitOf, type RateField } from '../rates';
import { Badge, ErrorNote, Field, LoadError, Modal, Toggle, useAction, useLoad } from '../ui';
import { PriceImport } from './PriceImport';

const rate = (v: Decimal | null) => (v === null ? '—' : formatMoney(v, { minDecimals: 2 }));

/** The margins of a model's rates over its unit costs, as `"20%"` or `"18–25%"`. */
function margins(m: Model, creditPrice: Decimal): string {
  const found = PRICED.flatMap(({ cost, rate: field }) => {
    const c = m.unit_costs?.[cost];
    const r = m[field];
    const margin = c !== undefined && r !== null ? marginOf(r, c, creditPrice) : null;
    return margin === null ? [] : [Number(margin)];
  });
  if (!found.length) return '—';
  const [lo, hi] = [Math.min(...found), Math.max(...found)];
  return lo === hi ? `${lo}%` : `${lo}–${hi}%`;
}

type Dialog = { kind: 'edit'; model: Model | null } | { kind: 'import' } | { kind: 'margin' };

export function Models() {
  const models = useLoad(() => listAll<Model>('/api/admin/models'), []);
  const providers = useLoad(() => api<Page<Provider>>('/api/admin/providers').then((r) => r.data), []);
  const settings = useLoad(() => api<Settings>('/api/admin/settings'), []);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [dialog, setDialog] = useState<Dialog | null>(null);
  const [search, setSearch] = useState('');
  const toggle = useAction();
  const ready = models.data && providers.data && settings.data;
  const shown = (models.data ?? []).filter((m) => (m.name ?? m.model).toLowerCase().includes(search.toLowerCase()));

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
        <button type="button" className="primary" onClick={() => setDialog({ kind: 'edit', model: null })} disabled={!ready || !providers.data?.length}>
          {t('models.add')}
        </button>
      </div>
      <p className="muted">
        {t('models.ratesExplain')}
        {settings.data && ` ${t('models.creditCosts', { price: normalize(settings.data.credit_price_usd) })}`}
      </p>
      <LoadError state={models} />
      <ErrorNote error={toggle.error} />
      {models.data && (
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
              <th className="num">{t('models.margin')}</th>
              <th>{t('providers.enabled')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shown.length === 0 && (
              <tr>
                <td colSpan={10} className="muted">
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
                  <strong>{m.name ?? m.model}</strong> {m.type !== 'chat' && <Badge tone="muted">{t(TYPE_NAMES[m.type])}</Badge>}
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
      )}
      {ready && dialog?.kind === 'edit' && (
        <ModelForm model={dialog.model} providers={providers.data!} settings={settings.data!} onClose={() => setDialog(null)} onSaved={done} />
      )}
      {ready && dialog?.kind === 'margin' && (
        <BulkMargin
          models={models.data!.filter((m) => selected.has(m.id))}
          settings={settings.data!}
          onClose={() => setDialog(null)}
          onDone={done}
        />
      )}
      {ready && dialog?.kind === 'import' && (
        <PriceImport models={models.data!} providers={providers.data!} settings={settings.data!} onClose={() => setDialog(null)} onDone={done} />
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

  function submit(e: FormEvent) {
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
        metadata: withContextWindow(m?.metadata ?? null, contextWindow),
        routing,
        enabled,
      };
      if (m) await api(`/api/admin/models/${m.id}`, { method: 'PATCH', body });
      else await api('/api/admin/models', { body: { ...body, provider_id: providerId } });
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
        <ErrorNote error={error} />
        <footer>
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

/** A model's metadata with its context window set (a whole number) or removed (empty). */
function withContextWindow(metadata: Record<string, unknown> | null, text: string): Record<string, unknown> | null {
  const rest = Object.fromEntries(Object.entries(metadata ?? {}).filter(([k]) => k !== 'context_window' && k !== 'max_input_tokens'));
  const next = text.trim() ? { ...rest, context_window: Number(text) } : rest;
  return Object.keys(next).length ? next : null;
}
