import { listAll, type User } from '../api';
import { useLoad } from '../ui';
import { UsageBlock } from '../usage';

export function Overview() {
  const users = useLoad(() => listAll<User>('/api/admin/users'), []);
  const names = new Map(users.data?.map((u) => [u.id, u.name]));
  return (
    <>
      <h1>Overview</h1>
      <UsageBlock
        path="/api/admin/usage"
        title="Usage"
        lists={[
          { group: 'model', title: 'Models' },
          { group: 'provider', title: 'Providers' },
          { group: 'app', title: 'Apps' },
          { group: 'user', title: 'Users', name: (id) => names.get(id) ?? id },
        ]}
      />
    </>
  );
}
