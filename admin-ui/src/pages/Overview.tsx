import { api, type Team } from '../api';
import { t } from '../i18n';
import { useLoad } from '../ui';
import { UsageBlock } from '../usage';

export function Overview() {
  const teams = useLoad(() => api<{ data: Team[] }>('/api/teams').then((r) => r.data), []);
  const teamNames = new Map(teams.data?.map((team) => [team.id, team.name]));
  return (
    <>
      <h1>{t('nav.overview')}</h1>
      <UsageBlock
        path="/api/admin/usage"
        title={t('usage.title')}
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
