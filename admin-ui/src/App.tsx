import { useCallback, useEffect, useState, type ComponentType } from 'react';
import { api, currentConnection, isAdmin, resume, signOut, SIGNED_OUT, type Me } from './api';
import { LanguagePicker } from './LanguagePicker';
import { t, useLang, type MessageKey } from './i18n';
import { formatMoney } from './money';
import { Account } from './pages/Account';
import { Aliases } from './pages/Aliases';
import { Billing } from './pages/Billing';
import { Audit } from './pages/Audit';
import { Calls } from './pages/Calls';
import { Connect } from './pages/Connect';
import { Models } from './pages/Models';
import { Overview } from './pages/Overview';
import { Playground } from './pages/Playground';
import { Providers } from './pages/Providers';
import { Settings } from './pages/Settings';
import { Teams } from './pages/Teams';
import { Setup, useNeedsSetup } from './pages/Setup';
import { SignIn } from './pages/SignIn';
import { Users } from './pages/Users';
import { Webhooks } from './pages/Webhooks';
import { useRoute } from './router';
import { ROLE_NAMES, SessionContext, useScrollableTablesFocusable, useSession } from './ui';

interface PageDef {
  path: string;
  label: MessageKey;
  /** Who sees it: operators only, everyone, or (teams) operators and members of a team. */
  admin: boolean | 'teams';
  Page: ComponentType;
}

const PAGES: PageDef[] = [
  { path: 'overview', label: 'nav.overview', admin: true, Page: Overview },
  { path: 'providers', label: 'nav.providers', admin: true, Page: Providers },
  { path: 'models', label: 'nav.models', admin: true, Page: Models },
  { path: 'aliases', label: 'nav.aliases', admin: true, Page: Aliases },
  { path: 'users', label: 'nav.users', admin: true, Page: Users },
  { path: 'teams', label: 'nav.teams', admin: 'teams', Page: Teams },
  { path: 'calls', label: 'nav.calls', admin: true, Page: Calls },
  { path: 'billing', label: 'nav.billing', admin: true, Page: Billing },
  { path: 'webhooks', label: 'nav.webhooks', admin: true, Page: Webhooks },
  { path: 'playground', label: 'nav.playground', admin: false, Page: Playground },
  { path: 'audit', label: 'nav.audit', admin: true, Page: Audit },
  { path: 'settings', label: 'nav.settings', admin: true, Page: Settings },
  { path: 'setup', label: 'nav.setup', admin: true, Page: Setup },
  { path: 'account', label: 'nav.account', admin: false, Page: Account },
];

export function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [booting, setBooting] = useState(true);
  const route = useRoute();
  // Keyed by the language below: a switch remounts the page, so strings kept in state or made once are made again in it.
  const language = useLang();
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

  if (booting) return <p className="boot">{t('common.loading')}</p>;
  if (!me) return <SignIn key={language} onSignedIn={setMe} />;
  // The page `aigne hub connect` opens stands alone: one question, no navigation.
  if (route.path[0] === 'connect') return <Connect key={language} me={me} />;
  return (
    <SessionContext.Provider value={{ me, refresh }}>
      <Shell key={language} />
    </SessionContext.Provider>
  );
}

function Shell() {
  const { me } = useSession();
  const route = useRoute();
  const pages = PAGES.filter((p) => !p.admin || isAdmin(me.role) || (p.admin === 'teams' && (me.teams?.length ?? 0) > 0));
  // Landing on an empty Hub, an admin starts with the guided set-up (unless they skipped it).
  const needsSetup = useNeedsSetup(isAdmin(me.role) && !route.path[0]);
  const fallback = needsSetup ? 'setup' : isAdmin(me.role) ? 'overview' : 'account';
  const page = pages.find((p) => p.path === route.path[0]) ?? pages.find((p) => p.path === fallback)!;

  useScrollableTablesFocusable();
  // On a narrow screen the sidebar folds behind a menu button; choosing a page folds it again.
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => {
    document.title = `${t(page.label)} · Hub`;
    setMenuOpen(false);
  }, [page]);

  return (
    <div className="shell">
      <SkipLink />
      <nav className={menuOpen ? 'sidebar open' : 'sidebar'} aria-label={t('nav.main')}>
        <div className="brand">
          Hub
          <button
            type="button"
            className="menu-button"
            aria-expanded={menuOpen}
            aria-controls="sidebar-menu"
            onClick={() => setMenuOpen((o) => !o)}
          >
            {t('nav.menu')}
          </button>
        </div>
        <div className="menu" id="sidebar-menu">
          {pages.map((p) => (
            <a key={p.path} href={`#/${p.path}`} aria-current={p === page ? 'page' : undefined}>
              {t(p.label)}
            </a>
          ))}
        </div>
        <div className="who">
          <strong>{me.user.name}</strong>
          <span>
            {t(ROLE_NAMES[me.role])} · {formatMoney(me.available, { prefix: me.currency_prefix })}
          </span>
          <span className="muted">{currentConnection()?.base || location.host}</span>
          <LanguagePicker />
          <button type="button" onClick={() => void signOut()}>
            {t('nav.signOut')}
          </button>
        </div>
      </nav>
      <main key={page.path} id="main" tabIndex={-1}>
        {needsSetup !== null && <page.Page />}
      </main>
    </div>
  );
}

/**
 * The first stop of the Tab key: straight to the page, past the sidebar. A
 * button, not a `#main` link: the hash is the site's route.
 */
function SkipLink() {
  return (
    <button type="button" className="skip-link" onClick={() => document.getElementById('main')?.focus()}>
      {t('nav.skip')}
    </button>
  );
}
