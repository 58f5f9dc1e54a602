/**
 * Teams. Operators create teams and set their budgets; a team's admins add
 * and remove its members, make and revoke its keys and read its usage;
 * members see their teams' budgets.
 */

import { useState, type FormEvent } from 'react';
import { api, BUDGET_PERIODS, isAdmin, type BudgetPeriod, type Team, type TeamDetail, type TeamRole } from '../api';
import { t, type MessageKey } from '../i18n';
import { KeysPanel } from '../keys';
import { href, useRoute } from '../router';
import { draftOf, knownZones, spentShare, teamBody, type TeamDraft } from '../teams';
import { formatTime } from '../time';
import { Badge, ErrorNote, Field, LoadError, Modal, Stat, useAction, useLoad, useMoney, useSession } from '../ui';
import { UsageBlock } from '../usage';

const PERIOD_NAMES: Record<BudgetPeriod, MessageKey> = {
  daily: 'teams.period.daily',
  weekly: 'teams.period.weekly',
  monthly: 'teams.period.monthly',
  none: 'teams.period.none',
};

const ROLE_NAMES: Record<TeamRole, MessageKey> = { member: 'teams.role.member', admin: 'teams.role.admin' };

export function Teams() {
  const id = useRoute().path[1];
  return id ? <TeamPage id={decodeURIComponent(id)} /> : <TeamList />;
}

function useBudgetText() {
  const money = useMoney();
  return (team: Team) =>
    team.budget === null ? t('teams.noBudget') : t('teams.budgetPer', { amount: money(team.budget), period: t(PERIOD_NAMES[team.budget_period]) });
}

/** The budget's use this period, as a bar and figures. */
function Spend({ team }: { team: Team }) {
  const money = useMoney();
  const share = spentShare(team);
  if (share === null) return <span className="muted">{t('teams.noBudget')}</span>;
  return (
    <span className="spend">
      <progress value={share} max={1} aria-label={t('teams.spentOf', { spent: money(team.spent), budget: money(team.budget) })} />{' '}
      {t('teams.spentOf', { spent: money(team.spent), budget: money(team.budget) })}
    </span>
  );
}

function TeamList() {
  const { me } = useSession();
  const operator = isAdmin(me.role);
  const teams = useLoad(() => api<{ data: Team[] }>('/api/teams').then((r) => r.data), []);
  const [adding, setAdding] = useState(false);
  const budgetText = useBudgetText();

  return (
    <>
      <div className="toolbar">
        <h1>{t('nav.teams')}</h1>
        {operator && (
          <button type="button" className="primary" onClick={() => setAdding(true)}>
            {t('teams.add')}
          </button>
        )}
      </div>
      <p className="muted">{t('teams.explain')}</p>
      <LoadError state={teams} />
        <table data-testid="teams">
          <thead>
            <tr>
              <th>{t('teams.name')}</th>
              <th>{t('teams.budget')}</th>
              <th>{t('teams.spent')}</th>
              <th>{t('teams.resets')}</th>
              <th>{t('teams.yourRole')}</th>
            </tr>
          </thead>
          <tbody>
            {teams.data?.length === 0 && (
              <tr>
                <td colSpan={5} className="muted">
                  {t('teams.none')}
                </td>
              </tr>
            )}
            {teams.data?.map((team) => (
              <tr key={team.id} data-team={team.name}>
                <td>
                  <a href={href(`teams/${encodeURIComponent(team.id)}`)}>{team.name}</a>
                </td>
                <td>{budgetText(team)}</td>
                <td>
                  <Spend team={team} />
                </td>
                <td>{team.period_end ? formatTime(team.period_end) : '—'}</td>
                <td>{team.role ? t(ROLE_NAMES[team.role]) : t('teams.operator')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      {adding && (
        <TeamForm
          team={null}
          onClose={() => setAdding(false)}
          onSaved={(team) => {
            setAdding(false);
            location.hash = href(`teams/${encodeURIComponent(team.id)}`);
          }}
        />
      )}
    </>
  );
}

function TeamForm(props: { team: Team | null; onClose(): void; onSaved(t: Team): void }) {
  const team = props.team;
  const [draft, setDraft] = useState<TeamDraft>(() => draftOf(team));
  const { busy, error, run } = useAction();
  const set = (patch: Partial<TeamDraft>) => setDraft((d) => ({ ...d, ...patch }));

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const body = teamBody(draft);
      const saved = team
        ? await api<Team>(`/api/admin/teams/${encodeURIComponent(team.id)}`, { method: 'PATCH', body })
        : await api<Team>('/api/admin/teams', { body });
      props.onSaved(saved);
    });
  }

  return (
    <Modal title={team ? t('teams.edit', { name: team.name }) : t('teams.add')} onClose={props.onClose} wide>
      <form onSubmit={submit}>
        <Field label={t('teams.name')}>
          <input name="name" value={draft.name} required maxLength={100} autoFocus onChange={(e) => set({ name: e.target.value })} />
        </Field>
        <div className="grid3">
          <Field label={t('teams.budgetCredits')} hint={t('teams.budgetHint')}>
            <input name="budget" inputMode="decimal" value={draft.budget} onChange={(e) => set({ budget: e.target.value })} />
          </Field>
          <Field label={t('teams.periodLabel')}>
            <select name="budget_period" value={draft.period} onChange={(e) => set({ period: e.target.value as BudgetPeriod })}>
              {BUDGET_PERIODS.map((p) => (
                <option key={p} value={p}>
                  {t(PERIOD_NAMES[p])}
                </option>
              ))}
            </select>
          </Field>
          <Field label={t('teams.timeZone')} hint={t('teams.timeZoneHint')}>
            <input name="time_zone" list="time-zones" value={draft.timeZone} onChange={(e) => set({ timeZone: e.target.value })} />
          </Field>
        </div>
        <datalist id="time-zones">
          {knownZones().map((z) => (
            <option key={z} value={z} />
          ))}
        </datalist>
        <Field label={t('teams.models')} hint={t('teams.modelsHint')}>
          <textarea name="allowed_models" rows={2} value={draft.models} onChange={(e) => set({ models: e.target.value })} />
        </Field>
        <fieldset>
          <legend>{t('teams.keyDefaults')}</legend>
          <div className="grid2">
            <Field label={t('keys.rpmLabel')}>
              <input name="rpm_limit" type="number" min={1} value={draft.rpm} onChange={(e) => set({ rpm: e.target.value })} />
            </Field>
            <Field label={t('keys.tpmLabel')}>
              <input name="tpm_limit" type="number" min={1} value={draft.tpm} onChange={(e) => set({ tpm: e.target.value })} />
            </Field>
            <Field label={t('keys.dailyCap')}>
              <input name="daily_spend_cap" inputMode="decimal" value={draft.daily} onChange={(e) => set({ daily: e.target.value })} />
            </Field>
            <Field label={t('keys.monthlyCap')}>
              <input name="monthly_spend_cap" inputMode="decimal" value={draft.monthly} onChange={(e) => set({ monthly: e.target.value })} />
            </Field>
          </div>
        </fieldset>
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {t('common.save')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}

function TeamPage({ id }: { id: string }) {
  const { me } = useSession();
  const money = useMoney();
  const budgetText = useBudgetText();
  const path = `/api/teams/${encodeURIComponent(id)}`;
  const team = useLoad(() => api<TeamDetail>(path), [path]);
  const models = useLoad(() => api<{ data: { id: string }[] }>('/v1/models').then((r) => r.data.map((m) => m.id)), []);
  const [editing, setEditing] = useState(false);
  const action = useAction();
  const operator = isAdmin(me.role);

  if (!team.data) return <LoadError state={team} />;
  const data = team.data;
  const manages = operator || data.role === 'admin';
  const names = new Map(data.members.map((m) => [m.user_id, m.name]));
  names.set(data.account_id, t('teams.serviceKeys'));

  function remove() {
    if (!confirm(t('teams.confirmDelete', { name: data.name }))) return;
    void action.run(async () => {
      await api(`/api/admin/teams/${encodeURIComponent(data.id)}`, { method: 'DELETE' });
      location.hash = href('teams');
    });
  }

  return (
    <>
      <p>
        <a href={href('teams')}>← {t('nav.teams')}</a>
      </p>
      <div className="toolbar">
        <h1>{data.name}</h1>
        {data.role && <Badge tone="muted">{t(ROLE_NAMES[data.role])}</Badge>}
        {operator && (
          <span className="actions">
            <button type="button" onClick={() => setEditing(true)}>
              {t('common.edit')}
            </button>
            <button type="button" className="danger" onClick={remove} disabled={action.busy}>
              {t('common.delete')}
            </button>
          </span>
        )}
      </div>
      <ErrorNote error={action.error} />
      <div className="stats">
        <Stat label={t('teams.budget')} value={budgetText(data)} sub={t('teams.inZone', { zone: data.time_zone })} />
        <Stat
          label={t('teams.spent')}
          value={<span data-testid="team-spent">{data.spent === null ? '—' : money(data.spent)}</span>}
          sub={<Spend team={data} />}
        />
        <Stat label={t('teams.remaining')} value={data.remaining === null ? '—' : money(data.remaining)} sub={data.period_end ? t('teams.resetsAt', { time: formatTime(data.period_end) }) : undefined} />
        {manages && <Stat label={t('teams.account')} value={money(data.balance)} sub={t('teams.accountSub')} />}
      </div>
      <p className="muted small">
        {t('teams.models')}: {data.allowed_models?.join(', ') ?? t('common.all')}
      </p>
      <Members team={data} manages={manages} onChanged={team.reload} />
      {manages && (
        <>
          <KeysPanel path={`${path}/keys`} revokeBase={`${path}/keys`} models={data.allowed_models ?? models.data ?? []} />
          <UsageBlock
            path={`${path}/usage`}
            title={t('teams.usage')}
            lists={[
              { group: 'user', title: t('teams.byMember'), name: (u) => names.get(u) ?? u },
              { group: 'model', title: t('usage.models') },
            ]}
          />
        </>
      )}
      {editing && (
        <TeamForm
          team={data}
          onClose={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            team.reload();
          }}
        />
      )}
    </>
  );
}

function Members({ team, manages, onChanged }: { team: TeamDetail; manages: boolean; onChanged(): void }) {
  const base = `/api/teams/${encodeURIComponent(team.id)}/members`;
  const [who, setWho] = useState('');
  const [role, setRole] = useState<TeamRole>('member');
  const action = useAction();

  function add(e: FormEvent) {
    e.preventDefault();
    const value = who.trim();
    void action.run(async () => {
      await api(base, { body: value.includes('@') ? { email: value, role } : { user_id: value, role } });
      setWho('');
      onChanged();
    });
  }

  function change(user: string, body: { role: TeamRole } | null) {
    void action.run(async () => {
      const path = `${base}/${encodeURIComponent(user)}`;
      await api(path, body ? { method: 'PATCH', body } : { method: 'DELETE' });
      onChanged();
    });
  }

  return (
    <section>
      <h2>{t('teams.members')}</h2>
      <ErrorNote error={action.error} />
        <table data-testid="members">
          <thead>
            <tr>
              <th>{t('teams.member')}</th>
              <th>{t('signIn.email')}</th>
              <th>{t('teams.role')}</th>
              {manages && <th>{t('teams.actions')}</th>}
            </tr>
          </thead>
          <tbody>
            {team.members.length === 0 && (
              <tr>
                <td colSpan={manages ? 4 : 3} className="muted">
                  {t('teams.noMembers')}
                </td>
              </tr>
            )}
            {team.members.map((m) => (
              <tr key={m.user_id} data-member={m.name}>
                <td>{m.name}</td>
                <td>{m.email ?? ''}</td>
                <td>
                  {manages ? (
                    <select
                      aria-label={t('teams.roleOf', { name: m.name })}
                      value={m.role}
                      disabled={action.busy}
                      onChange={(e) => change(m.user_id, { role: e.target.value as TeamRole })}
                    >
                      <option value="member">{t('teams.role.member')}</option>
                      <option value="admin">{t('teams.role.admin')}</option>
                    </select>
                  ) : (
                    t(ROLE_NAMES[m.role])
                  )}
                </td>
                {manages && (
                  <td>
                    <button
                      type="button"
                      disabled={action.busy}
                      onClick={() => confirm(t('teams.confirmRemove', { name: m.name })) && change(m.user_id, null)}
                    >
                      {t('teams.remove')}
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      {manages && (
        <form className="team-add" onSubmit={add}>
          <Field label={t('teams.addMember')} hint={t('teams.addMemberHint')}>
            <input name="member" value={who} required onChange={(e) => setWho(e.target.value)} />
          </Field>
          <Field label={t('teams.role')}>
            <select name="member_role" value={role} onChange={(e) => setRole(e.target.value as TeamRole)}>
              <option value="member">{t('teams.role.member')}</option>
              <option value="admin">{t('teams.role.admin')}</option>
            </select>
          </Field>
          <button type="submit" disabled={action.busy}>
            {t('teams.addButton')}
          </button>
        </form>
      )}
    </section>
  );
}
