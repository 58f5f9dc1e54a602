import { api, type Call, type Page } from '../api';
import { CallTable } from '../calls';
import { KeysPanel } from '../keys';
import { MoreButton, Stat, useLoad, useMoney, usePaged, useSession } from '../ui';
import { UsageBlock } from '../usage';

export function Account() {
  const { me } = useSession();
  const money = useMoney();
  const calls = usePaged((cursor) => api<Page<Call>>('/api/me/calls', { query: { cursor } }), []);
  const models = useLoad(() => api<{ data: { id: string }[] }>('/v1/models').then((r) => r.data.map((m) => m.id)), []);

  return (
    <>
      <div className="toolbar">
        <h1>My account</h1>
        {me.payment_link && (
          <a className="button primary" href={me.payment_link} target="_blank" rel="noreferrer">
            Buy credits
          </a>
        )}
      </div>
      <p className="muted">
        {me.user.name} · {me.role} · signed in with key {me.key.label}
      </p>
      <div className="stats">
        <Stat label="Balance" value={<span data-testid="my-balance">{money(me.balance)}</span>} />
        <Stat label="On hold" value={money(me.held)} sub="reserved by calls in flight" />
        <Stat label="Available" value={money(me.available)} sub={me.billing_enabled ? undefined : 'billing is off: calls are not charged'} />
      </div>
      <UsageBlock path="/api/me/usage" title="My usage" lists={[{ group: 'model', title: 'Models' }, { group: 'app', title: 'Apps' }]} />
      <section>
        <h2>My calls</h2>
        <CallTable calls={calls.items} />
        <MoreButton list={calls} />
      </section>
      <KeysPanel path="/api/me/keys" revokeBase="/api/me/keys" models={models.data ?? []} />
    </>
  );
}
