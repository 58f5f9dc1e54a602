/** Redemption codes: mint a batch (its codes shown once, to copy or download), list batches with hints and uses, disable. */

import { useState, type FormEvent } from 'react';
import { api, type CodeBatch, type CodeState, type MintedCodes, type Page, type RedemptionCodeInfo } from '../api';
import { codesCsv, codesFileName } from '../billing';
import { download } from '../csv';
import { t, tn, type MessageKey } from '../i18n';
import { formatTime, fromLocalInput } from '../time';
import { Badge, copyText, ErrorNote, Field, Modal, MoreButton, Toggle, useAction, useMoney, usePaged, type Tone } from '../ui';

const STATE_TONES: Record<CodeState, Tone> = { active: 'ok', used_up: 'muted', expired: 'warn', disabled: 'bad' };
const STATE_NAMES: Record<CodeState, MessageKey> = {
  active: 'common.active',
  used_up: 'codes.usedUp',
  expired: 'payment.expired',
  disabled: 'users.disabled',
};

function CodeBadge({ state }: { state: CodeState }) {
  return <Badge tone={STATE_TONES[state] ?? 'muted'}>{STATE_NAMES[state] ? t(STATE_NAMES[state]) : state.replace('_', ' ')}</Badge>;
}

export function Codes() {
  const batches = usePaged((cursor) => api<Page<CodeBatch>>('/api/admin/redemption-codes', { query: { cursor } }), []);
  const [minting, setMinting] = useState(false);
  const [minted, setMinted] = useState<MintedCodes | null>(null);
  // Which batches are unfolded: kept here, so reloading the list (after disabling a code) keeps them open.
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const action = useAction();
  const fold = (id: string, isOpen: boolean) =>
    setOpen((o) => {
      const next = new Set(o);
      if (isOpen) next.add(id);
      else next.delete(id);
      return next;
    });

  function disable(id: string, what: string) {
    if (!confirm(t('codes.confirmDisable', { what }))) return;
    void action.run(async () => {
      await api(`/api/admin/redemption-codes/${encodeURIComponent(id)}`, { method: 'DELETE' });
      batches.reload();
    });
  }

  return (
    <section>
      <div className="toolbar">
        <p className="muted">{t('codes.explain')}</p>
        <button type="button" className="primary" onClick={() => setMinting(true)}>
          {t('codes.mint')}
        </button>
      </div>
      <ErrorNote error={action.error} />
      <div data-testid="code-batches">
        {batches.items.length === 0 && !batches.loading && <p className="muted">{t('codes.none')}</p>}
        {batches.items.map((b) => (
          <Batch key={b.id} batch={b} busy={action.busy} onDisable={disable} open={open.has(b.id)} onToggle={(o) => fold(b.id, o)} />
        ))}
      </div>
      <MoreButton list={batches} />
      {minting && (
        <MintForm
          onClose={() => setMinting(false)}
          onMinted={(m) => {
            setMinting(false);
            setMinted(m);
            batches.reload();
          }}
        />
      )}
      {minted && <MintedDialog minted={minted} onClose={() => setMinted(null)} />}
    </section>
  );
}

function batchState(b: CodeBatch): CodeState {
  if (b.disabled_at) return 'disabled';
  if (b.codes.some((c) => c.state === 'active')) return 'active';
  return b.codes.find((c) => c.state !== 'used_up')?.state ?? 'used_up';
}

function Batch(props: { batch: CodeBatch; busy: boolean; open: boolean; onToggle(open: boolean): void; onDisable(id: string, what: string): void }) {
  const b = props.batch;
  const money = useMoney();
  const state = batchState(b);
  return (
    <details
      className="batch"
      data-batch={b.label ?? b.id}
      open={props.open}
      onToggle={(e) => props.open !== e.currentTarget.open && props.onToggle(e.currentTarget.open)}
    >
      <summary>
        <strong>{b.label ?? b.id}</strong>
        <span>
          {tn('codes.count', b.codes.length)} × {money(b.credits)}
        </span>
        <span className="muted">
          {b.uses === 1 ? t('codes.singleUse') : tn('codes.usesEach', b.uses)}
          {b.once_per_user && b.uses > 1 ? t('codes.oncePerPerson') : ''} · {tn('codes.redemptions', b.redemptions)} ·{' '}
          {b.expires_at ? t('codes.expiresAt', { time: formatTime(b.expires_at) }) : t('codes.noExpiry')}
        </span>
        <CodeBadge state={state} />
        {state !== 'disabled' && (
          <button type="button" className="danger" disabled={props.busy} onClick={() => props.onDisable(b.id, b.label ? t('codes.everyCodeOf', { label: b.label }) : t('codes.everyCodeOfBatch'))}
          >
            {t('codes.disableBatch')}
          </button>
        )}
      </summary>
      <div className="codes-list">
        <table className="compact">
          <thead>
            <tr>
              <th>{t('redeem.code')}</th>
              <th>{t('codes.state')}</th>
              <th className="num">{t('codes.redemptionsCol')}</th>
              <th className="num">{t('codes.usesLeft')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {b.codes.map((c) => (
              <CodeRow key={c.id} code={c} busy={props.busy} onDisable={props.onDisable} />
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}

function CodeRow(props: { code: RedemptionCodeInfo; busy: boolean; onDisable(id: string, what: string): void }) {
  const c = props.code;
  return (
    <tr data-code={c.hint}>
      <td className="mono">{c.hint}</td>
      <td>
        <CodeBadge state={c.state} />
      </td>
      <td className="num">{c.redemptions}</td>
      <td className="num">{c.uses_left}</td>
      <td className="actions">
        {c.state === 'active' && (
          <button type="button" className="danger" disabled={props.busy} onClick={() => props.onDisable(c.id, t('codes.theCode', { hint: c.hint }))}>
            {t('codes.disable')}
          </button>
        )}
      </td>
    </tr>
  );
}

function MintForm(props: { onClose(): void; onMinted(m: MintedCodes): void }) {
  const [draft, setDraft] = useState({ label: '', credits: '', count: '10', uses: '1', expires: '', once: true });
  const { busy, error, run } = useAction();
  const edit = (patch: Partial<typeof draft>) => setDraft({ ...draft, ...patch });
  const int = (s: string) => (/^\d+$/.test(s.trim()) ? Number(s) : s);

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const body = {
        credits: draft.credits.trim(),
        count: int(draft.count),
        uses: int(draft.uses),
        once_per_user: draft.once,
        expires_at: fromLocalInput(draft.expires),
        label: draft.label.trim() || undefined,
      };
      props.onMinted(await api<MintedCodes>('/api/admin/redemption-codes', { body }));
    });
  }

  return (
    <Modal title={t('codes.mintTitle')} onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label={t('keys.label')} hint={t('codes.labelHint')}>
          <input name="label" value={draft.label} maxLength={200} autoFocus onChange={(e) => edit({ label: e.target.value })} />
        </Field>
        <div className="grid2">
          <Field label={t('codes.creditsPer')}>
            <input name="credits" inputMode="decimal" value={draft.credits} required onChange={(e) => edit({ credits: e.target.value })} />
          </Field>
          <Field label={t('codes.number')} hint={t('codes.numberHint')}>
            <input name="count" type="number" min={1} max={1000} value={draft.count} required onChange={(e) => edit({ count: e.target.value })} />
          </Field>
          <Field label={t('codes.usesPer')}>
            <input name="uses" type="number" min={1} value={draft.uses} required onChange={(e) => edit({ uses: e.target.value })} />
          </Field>
          <Field label={t('keys.expires')} hint={t('keys.expiresHint')}>
            <input name="expires_at" type="datetime-local" value={draft.expires} onChange={(e) => edit({ expires: e.target.value })} />
          </Field>
        </div>
        <Toggle label={t('codes.once')} checked={draft.once} onChange={(once) => edit({ once })} />
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy || !draft.credits.trim()}>
            {t('codes.mintSubmit')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}

/** The codes just minted: shown this once, to copy or download before closing. */
function MintedDialog({ minted, onClose }: { minted: MintedCodes; onClose(): void }) {
  const [copied, setCopied] = useState(false);
  const money = useMoney();
  const text = minted.codes.join('\n');
  return (
    <Modal title={tn('codes.minted', minted.codes.length)} onClose={onClose}>
      <p>{t('codes.mintedExplain', { credits: money(minted.batch.credits) })}</p>
      <pre className="secret codes-list" data-testid="minted-codes">
        {text}
      </pre>
      <footer>
        <button type="button" onClick={() => copyText(text).then(() => setCopied(true))}>
          {copied ? t('common.copied') : t('codes.copyAll')}
        </button>
        <button type="button" onClick={() => download(codesFileName(minted.batch), codesCsv(minted.codes, minted.batch))}>
          {t('codes.downloadCsv')}
        </button>
        <button type="button" className="primary" onClick={onClose}>
          {t('common.done')}
        </button>
      </footer>
    </Modal>
  );
}
