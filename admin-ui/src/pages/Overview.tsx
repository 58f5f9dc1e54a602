import { api, type Team } from '../api';
import { t } from '../i18n';
import { useState } from 'react';
import { useLoad } from '../ui';
import { UsageBlock } from '../usage';

export function Overview() {
  const teams = useLoad(() => api<{ data: Team[] }>('/api/teams').then((r) => r.data), []);
  const teamNames = new Map(teams.data?.map((team) => [team.id, team.name]));
  // One team's usage, or everyone's.
  const [team, setTeam] = useState('');
  return (
    <>
      <h1>{t('nav.overview')}</h1>
      <UsageBlock
        path="/api/admin/usage"
        title={t('usage.title')}
        filter={team ? { team } : {}}
        controls={
          teams.data?.length ? (
            <select aria-label={t('calls.team')} value={team} onChange={(e) => setTeam(e.target.value)}>
              <option value="">{t('usage.allTeams')}</option>
              {teams.data.map((tm) => (
                <option key={tm.id} value={tm.id}>
                  {tm.name}
                </option>
              ))}
            </select>
          ) : undefined
        }
        lists={[
          { group: 'model', title: t('usage.models') },
          { group: 'provider', title: t('usage.providers') },
          { group: 'app', title: t('usage.apps') },
          { group: 'user', title: t('usage.users'), users: true },
          { group: 'team', title: t('usage.teams'), name: (id) => teamNames.get(id) ?? id },
        ]}
      />
    </>
  );
}
