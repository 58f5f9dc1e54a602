import { useState, type FormEvent } from 'react';
import { api, listAll, ROLES, type Ledger, type Model, type Page, type Role, type User } from '../api';
import { Buckets, LedgerTable } from '../credits';
import { t } from '../i18n';
import { KeysPanel } from '../keys';
import { href, useRoute } from '../router';
import { formatTime, fromLocalInput } from '../time';
import {
  Badge,
  ErrorNote,
  Field,
  LoadError,
  Modal,
  MoreButton,
  ROLE_NAMES,
  Stat,
  Toggle,
  useAction,
  useLoad,
  useMoney,
  useDebounced,
  usePaged,
  useSession,
} from '../ui';

export function Users() {
  const id = useRoute().path[1];
  return id ? <UserDetail id={id} /> : <UserList />;
}

/** A page of users at a time, searched by Hub (name, email or id) a moment after typing stops. */
function UserList() {
  const [adding, setAdding] = useState(false);
  const [search, setSearch] = useState('');
  const q = useDebounced(search.trim());
  const users = usePaged((cursor) => api<Page<User>>('/api/admin/users', { query: { cursor, q: q || undefined } }), [q]);
  const money = useMoney();

  return (
    <>
      <div className="toolbar">
        <h1>{t('nav.users')}</h1>
        <input
          type="search"
          placeholder={t('users.filter')}
          aria-label={t('users.filter')}
          value={search}
          onChange={(e) => setSearch(e.target.value)}
        />
        <button type="button" className="primary" onClick={() => setAdding(true)}>
          {t('users.add')}
        </button>
      </div>
      <table>
        <thead>
          <tr>
            <th>{t('users.name')}</th>
            <th>{t('signIn.email')}</th>
            <th>{t('users.role')}</th>
            <th className="num">{t('account.balance')}</th>
            <th className="num">{t('account.onHold')}</th>
            <th>{t('keys.created')}</th>
          </tr>
        </thead>
        <tbody>
          {users.items.map((u) => (
            <tr key={u.id} data-user={u.name}>
              <td>
                <a href={href(`users/${u.id}`)}>{u.name}</a> {u.disabled && <Badge tone="bad">{t('users.disabled')}</Badge>}
              </td>
              <td>{u.email ?? '—'}</td>
              <td>{t(ROLE_NAMES[u.role])}</td>
              <td className="num">{money(u.balance)}</td>
              <td className="num">{money(u.held)}</td>
              <td>{formatTime(u.created_at)}</td>
            </tr>
          ))}
          {!users.loading && !users.error && users.items.length === 0 && (
            <tr>
              <td colSpan={6} className="muted">
                {t('users.none')}
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <MoreButton list={users} />
      {adding && (
        <UserForm
          user={null}
          onClose={() => setAdding(false)}
          onSaved={(u) => {
            location.hash = href(`users/${u.id}`);
          }}
        />
      )}
    </>
  );
}

function UserForm(props: { user: User | null; onClose(): void; onSaved(u: User): void }) {
  const u = props.user;
  const { me } = useSession();
  const [name, setName] = useState(u?.name ?? '');
  const [email, setEmail] = useState(u?.email ?? '');
  const [role, setRole] = useState<Role>(u?.role ?? 'member');
  const [disabled, setDisabled] = useState(u?.disabled ?? false);
  const { busy, error, run } = useAction();
  const roles = ROLES.filter((r) => r !== 'owner' || me.role === 'owner');

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const body = { name: name.trim(), email: email.trim() || (u ? null : undefined), role };
      const saved = u
        ? await api<User>(`/api/admin/users/${u.id}`, { method: 'PATCH', body: { ...body, disabled } })
        : await api<User>('/api/admin/users', { body });
      props.onSaved(saved);
    });
  }

  return (
    <Modal title={u ? t('users.editTitle', { name: u.name }) : t('users.add')} onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label={t('users.name')}>
          <input name="name" value={name} required onChange={(e) => setName(e.target.value)} autoFocus />
        </Field>
        <Field label={t('signIn.email')}>
          <input name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} />
        </Field>
        <Field label={t('users.role')} hint={t('users.roleHint')}>
          <select name="role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {roles.map((r) => (
              <option key={r} value={r}>
                {t(ROLE_NAMES[r])}
              </option>
            ))}
          </select>
        </Field>
        {u && <Toggle label={t('users.disabledToggle')} checked={disabled} onChange={setDisabled} />}
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {u ? t('common.save') : t('users.add')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}

function UserDetail({ id }: { id: string }) {
  const session = useSession();
  const user = useLoad(() => api<User>(`/api/admin/users/${id}`), [id]);
  const models = useLoad(() => listAll<Model>('/api/admin/models'), []);
  const ledger = usePaged((cursor) => api<Ledger>(`/api/admin/users/${id}/ledger`, { query: { cursor } }), [id]);
  const [dialog, setDialog] = useState<'edit' | 'grant' | null>(null);
  // Bumped after a grant: the expiring buckets load again.
  const [version, setVersion] = useState(0);
  const money = useMoney();
  const u = user.data;

  function changed() {
    setDialog(null);
    user.reload();
    ledger.reload();
    setVersion((v) => v + 1);
    if (id === session.me.user.id) session.refresh();
  }

  return (
    <>
      <p>
        <a href={href('users')}>← {t('usage.users')}</a>
      </p>
      <LoadError state={user} />
      {u && (
        <>
          <div className="toolbar">
            <h1>
              {u.name} <Badge tone="muted">{t(ROLE_NAMES[u.role])}</Badge> {u.disabled && <Badge tone="bad">{t('users.disabled')}</Badge>}
            </h1>
            <a className="button" href={href('calls', { user: u.id })}>
              {t('usage.calls')}
            </a>
            <button type="button" onClick={() => setDialog('edit')}>
              {t('common.edit')}
            </button>
            <button type="button" className="primary" onClick={() => setDialog('grant')}>
              {t('users.grant')}
            </button>
          </div>
          <p className="muted">
            {u.email ?? t('users.noEmail')} · {u.id} · {t('users.since', { time: formatTime(u.created_at) })}
          </p>
          <div className="stats" data-testid="balances">
            <Stat label={t('account.balance')} value={<span data-testid="balance">{money(u.balance)}</span>} />
            <Stat label={t('account.onHold')} value={money(u.held)} sub={t('account.onHoldSub')} />
            <Stat label={t('account.available')} value={money(u.available)} />
          </div>
          <Buckets path={`/api/admin/users/${u.id}/credit-buckets`} version={version} />
          <KeysPanel
            path={`/api/admin/users/${u.id}/keys`}
            revokeBase="/api/admin/keys"
            models={(models.data ?? []).map((m) => m.name ?? m.model)}
          />
          <section>
            <h2>{t('users.ledger')}</h2>
            <LedgerTable entries={ledger.items} />
            <MoreButton list={ledger} />
          </section>
          {dialog === 'edit' && <UserForm user={u} onClose={() => setDialog(null)} onSaved={changed} />}
          {dialog === 'grant' && <GrantForm user={u} onClose={() => setDialog(null)} onGranted={changed} />}
        </>
      )}
    </>
  );
}

function GrantForm(props: { user: User; onClose(): void; onGranted(): void }) {
  const [amount, setAmount] = useState('');
  const [reason, setReason] = useState('');
  const [expires, setExpires] = useState('');
  const { busy, error, run } = useAction();
  const money = useMoney();

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      await api(`/api/admin/users/${props.user.id}/grants`, {
        body: { amount: amount.trim(), reason: reason.trim() || undefined, expires_at: fromLocalInput(expires) },
      });
      props.onGranted();
    });
  }

  return (
    <Modal title={t('users.grantTitle', { name: props.user.name })} onClose={props.onClose}>
      <form onSubmit={submit}>
        <p className="muted">{t('users.balanceNow', { balance: money(props.user.balance) })}</p>
        <Field label={t('users.amount')} hint={t('users.amountHint')}>
          <input name="amount" inputMode="decimal" value={amount} required onChange={(e) => setAmount(e.target.value)} autoFocus />
        </Field>
        <Field label={t('users.reason')}>
          <input name="reason" value={reason} onChange={(e) => setReason(e.target.value)} placeholder={t('users.reasonPlaceholder')} />
        </Field>
        <Field label={t('keys.expires')} hint={t('users.expiresHint')}>
          <input name="expires_at" type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />
        </Field>
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy || !amount.trim()}>
            {t('users.grantSubmit')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}
