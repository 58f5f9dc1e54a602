import { useCallback, useEffect, useState, type ComponentType } from 'react';
import { api, currentConnection, isAdmin, resume, signOut, SIGNED_OUT, type Me } from './api';
import { formatMoney } from './money';
import { Account } from './pages/Account';
import { Billing } from './pages/Billing';
import { Audit } from './pages/Audit';
import { Calls } from './pages/Calls';
import { Connect } from './pages/Connect';
import { Models } from './pages/Models';
import { Overview } from './pages/Overview';
import { Playground } from './pages/Playground';
import { Providers } from './pages/Providers';
import { Settings } from './pages/Settings';
import { SignIn } from './pages/SignIn';
import { Users } from './pages/Users';
import { Webhooks } from './pages/Webhooks';
import { useRoute } from './router';
import { SessionContext, useSession } from './ui';

interface PageDef {
  path: string;
  label: string;
  admin: boolean;
  Page: ComponentType;
}

const PAGES: PageDef[] = [
  { path: 'overview', label: 'Overview', admin: true, Page: Overview },
  { path: 'providers', label: 'Providers', admin: true, Page: Providers },
  { path: 'models', label: 'Models & rates', admin: true, Page: Models },
  { path: 'users', label: 'Users & keys', admin: true, Page: Users },
  { path: 'calls', label: 'Call log', admin: true, Page: Calls },
  { path: 'billing', label: 'Billing', admin: true, Page: Billing },
  { path: 'webhooks', label: 'Webhooks', admin: true, Page: Webhooks },
  { path: 'playground', label: 'Playground', admin: false, Page: Playground },
  { path: 'audit', label: 'Audit log', admin: true, Page: Audit },
  { path: 'settings', label: 'Settings', admin: true, Page: Settings },
  { path: 'account', label: 'My account', admin: false, Page: Account },
];

export function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [booting, setBooting] = useState(true);
  const route = useRoute();
  const refresh = useCallback(() => {
    api<Me>('/api/me').then(setMe, () => undefined);
  }, []);

  useEffect(() => {
    const onSignOut = () => setMe(null);
    window.addEventListener(SIGNED_OUT, onSignOut);
    void resume()
      .then(setMe)
      .finally(() => setBooting(false));
    return () => window.removeEventListener(SIGNED_OUT, onSignOut);
  }, []);

  if (booting) return <p className="boot">Loading…</p>;
  if (!me) return <SignIn onSignedIn={setMe} />;
  // The page `aigne hub connect` opens stands alone: one question, no navigation.
  if (route.path[0] === 'connect') return <Connect me={me} />;
  return (
    <SessionContext.Provider value={{ me, refresh }}>
      <Shell />
    </SessionContext.Provider>
  );
}

function Shell() {
  const { me } = useSession();
  const route = useRoute();
  const pages = PAGES.filter((p) => !p.admin || isAdmin(me.role));
  const fallback = isAdmin(me.role) ? 'overview' : 'account';
  const page = pages.find((p) => p.path === route.path[0]) ?? pages.find((p) => p.path === fallback)!;

  useEffect(() => {
    document.title = `${page.label} · Hub`;
  }, [page]);

  return (
    <div className="shell">
      <nav className="sidebar" aria-label="Main">
        <div className="brand">Hub</div>
        {pages.map((p) => (
          <a key={p.path} href={`#/${p.path}`} aria-current={p === page ? 'page' : undefined}>
            {p.label}
          </a>
        ))}
        <div className="who">
          <strong>{me.user.name}</strong>
          <span>
            {me.role} · {formatMoney(me.available, { prefix: me.currency_prefix })}
          </span>
          <span className="muted">{currentConnection()?.base || location.host}</span>
          <button type="button" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </nav>
      <main key={page.path}>
        <page.Page />
      </main>
    </div>
  );
}
