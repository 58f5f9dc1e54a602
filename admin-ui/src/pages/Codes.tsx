/** Redemption codes: mint a batch (its codes shown once, to copy or download), list batches with hints and uses, disable. */

import { useState, type FormEvent } from 'react';
import { api, type CodeBatch, type CodeState, type MintedCodes, type Page, type RedemptionCodeInfo } from '../api';
import { codesCsv, codesFileName } from '../billing';
import { download } from '../csv';
import { plural } from '../format';
import { formatTime, fromLocalInput } from '../time';
import { Badge, copyText, ErrorNote, Field, Modal, MoreButton, Toggle, useAction, useMoney, usePaged, type Tone } from '../ui';

const STATE_TONES: Record<CodeState, Tone> = { active: 'ok', used_up: 'muted', expired: 'warn', disabled: 'bad' };

function CodeBadge({ state }: { state: CodeState }) {
  return <Badge tone={STATE_TONES[state] ?? 'muted'}>{state.replace('_', ' ')}</Badge>;
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
    if (!confirm(`Disable ${what}? Credits already redeemed stay.`)) return;
    void action.run(async () => {
      await api(`/api/admin/redemption-codes/${encodeURIComponent(id)}`, { method: 'DELETE' });
      batches.reload();
    });
  }

  return (
    <section>
      <div className="toolbar">
        <p className="muted">Codes worth credits, for customers to redeem on their account page. Hub keeps only a hint of each.</p>
        <button type="button" className="primary" onClick={() => setMinting(true)}>
          Mint codes
        </button>
      </div>
      <ErrorNote error={action.error} />
      <div data-testid="code-batches">
        {batches.items.length === 0 && !batches.loading && <p className="muted">No codes yet.</p>}
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
          {plural(b.codes.length, 'code')} × {money(b.credits)}
        </span>
        <span className="muted">
          {b.uses === 1 ? 'single use' : `${b.uses} uses each`}
          {b.once_per_user && b.uses > 1 ? ', once per person' : ''} · {plural(b.redemptions, 'redemption')} ·{' '}
          {b.expires_at ? `expires ${formatTime(b.expires_at)}` : 'no expiry'}
        </span>
        <CodeBadge state={state} />
        {state !== 'disabled' && (
          <button type="button" className="danger" disabled={props.busy} onClick={() => props.onDisable(b.id, `every code of ${b.label ?? 'this batch'}`)}>
            Disable batch
          </button>
        )}
      </summary>
      <div className="codes-list">
        <table className="compact">
          <thead>
            <tr>
              <th>Code</th>
              <th>State</th>
              <th className="num">Redemptions</th>
              <th className="num">Uses left</th>
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
          <button type="button" className="danger" disabled={props.busy} onClick={() => props.onDisable(c.id, `the code ${c.hint}`)}>
            Disable
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
    <Modal title="Mint redemption codes" onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label="Label" hint="For you: which campaign or customer the codes are for.">
          <input name="label" value={draft.label} maxLength={200} autoFocus onChange={(e) => edit({ label: e.target.value })} />
        </Field>
        <div className="grid2">
          <Field label="Credits per redemption">
            <input name="credits" inputMode="decimal" value={draft.credits} required onChange={(e) => edit({ credits: e.target.value })} />
          </Field>
          <Field label="Number of codes" hint="1–1000.">
            <input name="count" type="number" min={1} max={1000} value={draft.count} required onChange={(e) => edit({ count: e.target.value })} />
          </Field>
          <Field label="Uses per code">
            <input name="uses" type="number" min={1} value={draft.uses} required onChange={(e) => edit({ uses: e.target.value })} />
          </Field>
          <Field label="Expires" hint="Empty: never.">
            <input name="expires_at" type="datetime-local" value={draft.expires} onChange={(e) => edit({ expires: e.target.value })} />
          </Field>
        </div>
        <Toggle label="Once per person (for codes with several uses)" checked={draft.once} onChange={(once) => edit({ once })} />
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy || !draft.credits.trim()}>
            Mint
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
    <Modal title={`${plural(minted.codes.length, 'code')} minted`} onClose={onClose}>
      <p>
        Each is worth {money(minted.batch.credits)}. Copy or download them now: Hub does not show them again.
      </p>
      <pre className="secret codes-list" data-testid="minted-codes">
        {text}
      </pre>
      <footer>
        <button type="button" onClick={() => copyText(text).then(() => setCopied(true))}>
          {copied ? 'Copied' : 'Copy all'}
        </button>
        <button type="button" onClick={() => download(codesFileName(minted.batch), codesCsv(minted.codes, minted.batch))}>
          Download CSV
        </button>
        <button type="button" className="primary" onClick={onClose}>
          Done
        </button>
      </footer>
    </Modal>
  );
}
