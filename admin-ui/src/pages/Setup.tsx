import { useEffect, useRef, useState, type FormEvent } from 'react';
import {
  api,
  currentConnection,
  errorText,
  providerKinds,
  type Credential,
  type CredentialTest,
  type NewApiKey,
  type Page,
  type Provider,
  type ProviderKind,
  type Settings,
} from '../api';
import { ms } from '../format';
import { t, tn, type MessageKey } from '../i18n';
import { compare, normalize } from '../money';
import { parsePriceFile, type PriceEntry } from '../rates';
import { entriesFor, KEY_PAGES, modelFromEntry, orderKinds, PRICE_FILE_URL, setupSkipped, skipSetup, snippets, type Snippet } from '../setup';
import { Badge, copyText, ErrorNote, Field, LoadError, useAction, useLoad, useSession } from '../ui';

/**
 * Whether the landing page should be the guided set-up: an admin on a Hub
 * with no provider who has not skipped it here. Null while asking Hub.
 */
export function useNeedsSetup(ask: boolean): boolean | null {
  const [needs, setNeeds] = useState<boolean | null>(ask ? null : false);
  useEffect(() => {
    if (!ask || setupSkipped()) return setNeeds(false);
    setNeeds(null);
    let live = true;
    api<Page<Provider>>('/api/admin/providers', { query: { limit: 1 } }).then(
      (r) => live && setNeeds(r.data.length === 0),
      () => live && setNeeds(false),
    );
    return () => {
      live = false;
    };
  }, [ask]);
  return needs;
}

type Step = 'provider' | 'test' | 'models' | 'key' | 'connect';
const STEPS: { step: Step; label: MessageKey }[] = [
  { step: 'provider', label: 'setup.step.provider' },
  { step: 'test', label: 'setup.step.test' },
  { step: 'models', label: 'setup.step.models' },
  { step: 'key', label: 'setup.step.key' },
  { step: 'connect', label: 'setup.step.connect' },
];

/** A provider and, when its kind takes a secret, the credential made with it. */
interface Added {
  provider: Provider;
  credential: Credential | null;
}

/** Provider, credential test, models and rates, a key, then the client configuration: one step after another. */
export function Setup() {
  const [added, setAdded] = useState<Added | null>(null);
  const [tested, setTested] = useState(false);
  const [models, setModels] = useState<string[]>([]);
  const [key, setKey] = useState<NewApiKey | null>(null);
  const step: Step = !added ? 'provider' : !tested ? 'test' : !models.length ? 'models' : !key ? 'key' : 'connect';

  function skip() {
    skipSetup();
    location.hash = '#/overview';
  }

  return (
    <>
      <div className="toolbar">
        <h1>{t('setup.title')}</h1>
        {step !== 'connect' && (
          <button type="button" onClick={skip}>
            {t('setup.skip')}
          </button>
        )}
      </div>
      <p className="muted">{t('setup.intro')}</p>
      <ol className="setup-steps">
        {STEPS.map((s, i) => (
          <li key={s.step} aria-current={s.step === step ? 'step' : undefined}>
            {s.step === step ? <strong>{t(s.label)}</strong> : t(s.label)}
            {i < STEPS.findIndex((x) => x.step === step) && ' ✓'}
          </li>
        ))}
      </ol>
      <section className="card" aria-labelledby="setup-step">
        {step === 'provider' && <ProviderStep onAdded={setAdded} />}
        {step === 'test' && added && <TestStep added={added} onPassed={() => setTested(true)} />}
        {step === 'models' && added && <ModelsStep provider={added.provider} onCreated={setModels} />}
        {step === 'key' && <KeyStep onCreated={setKey} />}
        {step === 'connect' && key && <ConnectStep apiKey={key.key} models={models} />}
      </section>
    </>
  );
}

function StepHeading({ label }: { label: MessageKey }) {
  return <h2 id="setup-step">{t(label)}</h2>;
}

function ProviderStep({ onAdded }: { onAdded(a: Added): void }) {
  const kinds = useLoad(() => providerKinds().then(orderKinds), []);
  const [kind, setKind] = useState('');
  const [name, setName] = useState('');
  const [baseUrl, setBaseUrl] = useState('');
  const [region, setRegion] = useState('');
  const [secret, setSecret] = useState('');
  const { busy, error, run } = useAction();
  const k: ProviderKind | undefined = kinds.data?.find((x) => x.kind === kind) ?? kinds.data?.[0];
  const keyPage = k && KEY_PAGES[k.kind];

  function submit(e: FormEvent) {
    e.preventDefault();
    if (!k) return;
    void run(async () => {
      const provider = await api<Provider>('/api/admin/providers', {
        body: { kind: k.kind, name: name.trim() || k.kind, base_url: baseUrl.trim() || undefined, region: region.trim() || undefined },
      });
      if (!k.needs_secret) return onAdded({ provider, credential: null });
      try {
        const credential = await api<Credential>(`/api/admin/providers/${provider.id}/credentials`, { body: { name: 'main', secret: secret.trim() } });
        onAdded({ provider, credential });
      } catch (err) {
        // A provider without its credential is half a step: take it back, so trying again starts clean.
        await api(`/api/admin/providers/${provider.id}`, { method: 'DELETE' }).catch(() => undefined);
        throw err;
      }
    });
  }

  return (
    <form onSubmit={submit}>
      <StepHeading label="setup.step.provider" />
      <p className="muted">{t('setup.providerExplain')}</p>
      <LoadError state={kinds} />
      {k && (
        <>
          <div className="grid2">
            <Field label={t('providers.kind')}>
              <select name="kind" value={k.kind} onChange={(e) => setKind(e.target.value)}>
                {kinds.data!.map((x) => (
                  <option key={x.kind} value={x.kind}>
                    {x.display_name}
                  </option>
                ))}
              </select>
            </Field>
            <Field label={t('users.name')} hint={t('providers.nameHint')}>
              <input name="name" value={name} placeholder={k.kind} onChange={(e) => setName(e.target.value)} />
            </Field>
            <Field
              label={t('providers.baseUrl')}
              hint={k.default_base_url ? t('providers.baseUrlDefault', { url: k.default_base_url }) : t(k.needs_region ? 'providers.baseUrlRegion' : 'providers.baseUrlRequired')}
            >
              <input
                name="base_url"
                type="url"
                value={baseUrl}
                placeholder={k.default_base_url || 'https://…'}
                required={!k.default_base_url && !k.needs_region}
                onChange={(e) => setBaseUrl(e.target.value)}
              />
            </Field>
            {k.needs_region && (
              <Field label={t('providers.region')} hint={t('providers.regionHint')}>
                <input name="region" value={region} placeholder="us-east-1" onChange={(e) => setRegion(e.target.value)} />
              </Field>
            )}
            {k.needs_secret && (
              <Field
                label={t('providers.secret')}
                hint={
                  keyPage ? (
                    <>
                      {t('setup.keyFrom')}{' '}
                      <a href={keyPage} target="_blank" rel="noreferrer">
                        {new URL(keyPage).host}
                      </a>
                    </>
                  ) : (
                    t('setup.keyFromOperator')
                  )
                }
              >
                <input name="secret" type="password" autoComplete="off" required value={secret} onChange={(e) => setSecret(e.target.value)} />
              </Field>
            )}
          </div>
          {!k.needs_secret && <p className="muted">{t('providers.noSecretNeeded')}</p>}
        </>
      )}
      <ErrorNote error={error} />
      <footer>
        <button type="submit" className="primary" disabled={busy || !k}>
          {t('setup.addProvider')}
        </button>
      </footer>
    </form>
  );
}

function TestStep({ added, onPassed }: { added: Added; onPassed(): void }) {
  const [result, setResult] = useState<CredentialTest | null>(null);
  const { busy, error, run } = useAction();
  const credential = added.credential;

  function test() {
    if (!credential) return;
    void run(async () => setResult(await api<CredentialTest>(`/api/admin/credentials/${credential.id}/test`, { method: 'POST' })));
  }

  return (
    <div>
      <StepHeading label="setup.step.test" />
      {credential ? (
        <p className="muted">{t('setup.testExplain', { provider: added.provider.name, hint: credential.secret_hint })}</p>
      ) : (
        <p className="muted">{t('setup.nothingToTest')}</p>
      )}
      {result && (
        <div className="test-result" data-testid="test-result">
          <Badge tone={result.ok ? 'ok' : 'bad'}>{result.ok ? t('providers.passed') : t('providers.failed')}</Badge>{' '}
          {t('providers.httpIn', { status: result.status ?? '—', time: ms(result.latency_ms) })}
          <pre>{result.message}</pre>
          {!result.ok && <p>{t('setup.testFailed')}</p>}
        </div>
      )}
      <ErrorNote error={error} />
      <footer>
        {credential && (
          <button type="button" className={result?.ok ? undefined : 'primary'} disabled={busy} onClick={test}>
            {t('setup.test')}
          </button>
        )}
        <button type="button" className={result?.ok || !credential ? 'primary' : undefined} disabled={busy} onClick={onPassed}>
          {result?.ok || !credential ? t('setup.next') : t('setup.continueAnyway')}
        </button>
      </footer>
    </div>
  );
}

const SHOWN = 100;

function ModelsStep({ provider, onCreated }: { provider: Provider; onCreated(names: string[]): void }) {
  const session = useSession();
  const settings = useLoad(() => api<Settings>('/api/admin/settings'), []);
  const s = settings.data;
  const [billing, setBilling] = useState<boolean | null>(null);
  const [margin, setMargin] = useState<string | null>(null);
  const [trial, setTrial] = useState('5');
  const [entries, setEntries] = useState<PriceEntry[] | null>(null);
  const [fileError, setFileError] = useState<string | null>(null);
  const [search, setSearch] = useState('');
  const [picked, setPicked] = useState<PriceEntry[]>([]);
  // Models already added by an earlier try of this step, so a retry after a failure goes on from there.
  const made = useRef(new Set<string>());
  const { busy, error, run } = useAction();
  const billingOn = billing ?? s?.billing_enabled ?? true;
  const marginText = margin ?? (s ? normalize(s.margin_percent) : '');
  const shown = entries ? entriesFor(entries, provider.kind, search).slice(0, SHOWN) : [];

  async function load(file: File | undefined) {
    if (!file) return;
    try {
      setEntries(parsePriceFile(await file.text()));
      setFileError(null);
      setPicked([]);
    } catch (e) {
      setFileError(t('import.notPriceFile', { error: errorText(e) }));
    }
  }

  function pick(e: PriceEntry, on: boolean) {
    setPicked(on ? [...picked, e] : picked.filter((x) => x.key !== e.key));
  }

  function submit(ev: FormEvent) {
    ev.preventDefault();
    if (!s) return;
    void run(async () => {
      await api('/api/admin/settings', { method: 'PATCH', body: billingOn ? { billing_enabled: true, margin_percent: marginText } : { billing_enabled: false } });
      const margin = billingOn ? marginText : normalize(s.margin_percent);
      for (const e of picked) {
        if (made.current.has(e.key)) continue;
        await api('/api/admin/models', { body: modelFromEntry(e, provider.id, margin, s.credit_price_usd) });
        made.current.add(e.key);
      }
      // Billing on, the first playground call is paid from the admin's own balance: give it something to spend.
      if (billingOn && compare(trial.trim(), 0) > 0) {
        await api(`/api/admin/users/${session.me.user.id}/grants`, { body: { amount: trial.trim(), reason: t('setup.trialReason') } });
      }
      session.refresh();
      onCreated(picked.map((e) => `${provider.name}/${e.model}`));
    });
  }

  return (
    <form onSubmit={submit}>
      <StepHeading label="setup.step.models" />
      <LoadError state={settings} />
      <fieldset>
        <legend>{t('setup.billing')}</legend>
        <label className="radio">
          <input type="radio" name="billing" value="sell" checked={billingOn} onChange={() => setBilling(true)} />
          {t('setup.billingSell')}
        </label>
        <label className="radio">
          <input type="radio" name="billing" value="off" checked={!billingOn} onChange={() => setBilling(false)} />
          {t('setup.billingOff')}
        </label>
      </fieldset>
      {billingOn && (
        <div className="grid2">
          <Field label={t('models.marginPercent')} hint={s && t('import.creditPrice', { price: normalize(s.credit_price_usd) })}>
            <input name="margin" inputMode="decimal" value={marginText} onChange={(e) => setMargin(e.target.value)} />
          </Field>
          <Field label={t('setup.trial')} hint={t('setup.trialHint')}>
            <input name="trial" inputMode="decimal" value={trial} onChange={(e) => setTrial(e.target.value)} />
          </Field>
        </div>
      )}
      <Field
        label={t('import.file')}
        hint={
          <>
            {t('setup.priceFileFrom')}{' '}
            <a href={PRICE_FILE_URL} target="_blank" rel="noreferrer" download>
              model_prices_and_context_window.json
            </a>
          </>
        }
      >
        <input type="file" name="price_file" accept=".json,application/json" onChange={(e) => void load(e.target.files?.[0])} />
      </Field>
      <ErrorNote error={fileError} />
      {entries && (
        <>
          <input type="search" placeholder={t('import.search')} aria-label={t('import.search')} value={search} onChange={(e) => setSearch(e.target.value)} />
          {shown.length === 0 && <p className="muted">{t('setup.noEntries', { kind: provider.kind })}</p>}
          <div className="checks">
            {shown.map((e) => (
              <label key={e.key}>
                <input type="checkbox" aria-label={t('import.pick', { model: e.key })} checked={picked.some((x) => x.key === e.key)} onChange={(x) => pick(e, x.target.checked)} />
                {e.key}
              </label>
            ))}
          </div>
        </>
      )}
      <ErrorNote error={error} />
      <footer>
        <button type="submit" className="primary" disabled={busy || !s || !picked.length}>
          {tn('setup.addModels', picked.length)}
        </button>
      </footer>
    </form>
  );
}

function KeyStep({ onCreated }: { onCreated(k: NewApiKey): void }) {
  const [label, setLabel] = useState('');
  const { busy, error, run } = useAction();

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => onCreated(await api<NewApiKey>('/api/me/keys', { body: { label: label.trim() || 'setup' } })));
  }

  return (
    <form onSubmit={submit}>
      <StepHeading label="setup.step.key" />
      <p className="muted">{t('setup.keyExplain')}</p>
      <Field label={t('keys.label')} hint={t('keys.labelHint')}>
        <input name="label" value={label} placeholder="setup" onChange={(e) => setLabel(e.target.value)} />
      </Field>
      <ErrorNote error={error} />
      <footer>
        <button type="submit" className="primary" disabled={busy}>
          {t('keys.create')}
        </button>
      </footer>
    </form>
  );
}

function ConnectStep({ apiKey, models }: { apiKey: string; models: string[] }) {
  const [model, setModel] = useState(models[0]);
  const base = currentConnection()?.base || location.origin;
  return (
    <div>
      <StepHeading label="setup.step.connect" />
      <p>{t('setup.connectExplain')}</p>
      <p className="notice">{t('secret.once')}</p>
      <Field label={t('call.model')}>
        <select name="snippet_model" value={model} onChange={(e) => setModel(e.target.value)}>
          {models.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      </Field>
      {snippets(base, apiKey, model).map((s) => (
        <SnippetBlock key={s.id} snippet={s} />
      ))}
      <footer>
        <a className="button" href="#/overview">
          {t('common.done')}
        </a>
        <a className="button primary" href="#/playground">
          {t('setup.openPlayground')}
        </a>
      </footer>
    </div>
  );
}

function SnippetBlock({ snippet }: { snippet: Snippet }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="snippet" data-snippet={snippet.id}>
      <div className="toolbar">
        <h3>{snippet.title}</h3>
        <small className="muted">{snippet.where ?? t('setup.inShell')}</small>
        <button type="button" aria-label={t('setup.copySnippet', { client: snippet.title })} onClick={() => void copyText(snippet.code).then(() => setCopied(true))}>
          {copied ? t('common.copied') : t('common.copy')}
        </button>
      </div>
      <pre>
        <code>{snippet.code}</code>
      </pre>
    </div>
  );
}
