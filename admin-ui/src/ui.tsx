/** Shared pieces: the session, loading and action hooks, dialogs and small widgets. */

import { createContext, useContext, useEffect, useRef, useState, type ReactNode, type RefObject } from 'react';
import { errorText, type Me, type Page, type Role } from './api';
import { t, type MessageKey } from './i18n';
import { formatMoney, type Decimal } from './money';

/** A role's name in the site's language. */
export const ROLE_NAMES: Record<Role, MessageKey> = {
  owner: 'role.owner',
  admin: 'role.admin',
  member: 'role.member',
  guest: 'role.guest',
};

export interface SessionValue {
  me: Me;
  refresh(): void;
}

export const SessionContext = createContext<SessionValue | null>(null);

export function useSession(): SessionValue {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a session');
  return s;
}

/** Formats credits with the operator's currency prefix. */
export function useMoney(): (value: Decimal | null | undefined) => string {
  const prefix = useSession().me.currency_prefix;
  return (value) => (value === null || value === undefined ? '—' : formatMoney(value, { prefix }));
}

export interface Loaded<T> {
  data?: T;
  error?: string;
  loading: boolean;
  reload(): void;
}

/** Loads data when `deps` change; `reload` loads again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (e: unknown) => live && setState((s) => ({ ...s, error: errorText(e), loading: false })),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

/** Runs user actions one at a time, keeping the busy flag and the last error. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function run(action: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, run };
}

export function LoadError({ state }: { state: Loaded<unknown> }) {
  if (state.error) return <ErrorNote error={state.error} />;
  if (state.loading && state.data === undefined) return <p className="muted">{t('common.loading')}</p>;
  return null;
}

export function ErrorNote({ error }: { error: string | null | undefined }) {
  return error ? (
    <p className="error" role="alert">
      {error}
    </p>
  ) : null;
}

const FOCUSABLE = 'a[href], button:not(:disabled), input:not(:disabled), select:not(:disabled), textarea:not(:disabled), summary, [tabindex]:not([tabindex="-1"])';

/**
 * What a modal dialog owes the keyboard: focus moves into it on opening (to
 * a field marked `autoFocus`, else its first control), Tab and Shift+Tab go
 * round inside it, Escape closes it, and on closing focus goes back to where
 * it was (the button that opened it).
 */
function useDialogFocus(onClose: () => void): RefObject<HTMLElement | null> {
  const ref = useRef<HTMLElement | null>(null);
  // Read while rendering: by the time effects run, a field's `autoFocus` has taken the focus.
  const [opener] = useState(() => document.activeElement as HTMLElement | null);
  const close = useRef(onClose);
  close.current = onClose;
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.contains(document.activeElement)) {
      const first = [...dialog.querySelectorAll<HTMLElement>(FOCUSABLE)].find((e) => !e.classList.contains('icon'));
      (first ?? dialog).focus();
    }
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') close.current();
      if (e.key !== 'Tab' || !dialog) return;
      const items = [...dialog.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => el.offsetParent !== null);
      if (items.length === 0) return;
      const [first, last] = [items[0], items[items.length - 1]];
      const inside = dialog.contains(document.activeElement);
      if (e.shiftKey && (document.activeElement === first || !inside)) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (document.activeElement === last || !inside)) {
        e.preventDefault();
        first.focus();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => {
      window.removeEventListener('keydown', onKey);
      if (opener?.isConnected) opener.focus();
    };
  }, [opener]);
  return ref;
}

export function Modal(props: { title: string; onClose(): void; children: ReactNode; wide?: boolean }) {
  const ref = useDialogFocus(props.onClose);
  return (
    <div className="overlay" onMouseDown={(e) => e.target === e.currentTarget && props.onClose()}>
      <div
        ref={ref as RefObject<HTMLDivElement | null>}
        tabIndex={-1}
        className={props.wide ? 'modal wide' : 'modal'}
        role="dialog"
        aria-modal="true"
        aria-label={props.title}
      >
        <header>
          <h2>{props.title}</h2>
          <button type="button" className="icon" aria-label={t('common.close')} onClick={props.onClose}>
            ×
          </button>
        </header>
        {props.children}
      </div>
    </div>
  );
}

export function Drawer(props: { title: string; onClose(): void; children: ReactNode }) {
  const ref = useDialogFocus(props.onClose);
  return (
    <div className="overlay" onMouseDown={(e) => e.target === e.currentTarget && props.onClose()}>
      <aside ref={ref} tabIndex={-1} className="drawer" role="dialog" aria-modal="true" aria-label={props.title}>
        <header>
          <h2>{props.title}</h2>
          <button type="button" className="icon" aria-label={t('common.close')} onClick={props.onClose}>
            ×
          </button>
        </header>
        {props.children}
      </aside>
    </div>
  );
}

export function Field(props: { label: string; hint?: ReactNode; children: ReactNode }) {
  return (
    <label className="field">
      <span>{props.label}</span>
      {props.children}
      {props.hint && <small>{props.hint}</small>}
    </label>
  );
}

/** A switch; `quiet` keeps the label for assistive technology only (in a table row). */
export function Toggle(props: { checked: boolean; onChange(v: boolean): void; label: string; disabled?: boolean; quiet?: boolean }) {
  return (
    <label className="toggle">
      <input
        type="checkbox"
        role="switch"
        checked={props.checked}
        disabled={props.disabled}
        onChange={(e) => props.onChange(e.target.checked)}
      />
      <span className={props.quiet ? 'sr-only' : undefined}>{props.label}</span>
    </label>
  );
}

export type Tone = 'ok' | 'warn' | 'bad' | 'muted';

export function Badge({ tone, children }: { tone: Tone; children: ReactNode }) {
  return <span className={`badge ${tone}`}>{children}</span>;
}

export function Stat(props: { label: string; value: ReactNode; sub?: ReactNode }) {
  return (
    <div className="stat">
      <span>{props.label}</span>
      <strong>{props.value}</strong>
      {props.sub && <small>{props.sub}</small>}
    </div>
  );
}

/** Puts `text` on the clipboard (a fallback where the Clipboard API is unavailable: plain http). */
export async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = document.createElement('textarea');
  area.value = text;
  document.body.append(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

/** Shows a secret once, with a copy button: it cannot be read again after closing. `children`: what to do with it. */
export function SecretOnce(props: { title: string; secret: string; onClose(): void; children?: ReactNode }) {
  const [copied, setCopied] = useState(false);
  return (
    <Modal title={props.title} onClose={props.onClose}>
      <p>{t('secret.once')}</p>
      {props.children}
      <code className="secret" data-testid="secret">
        {props.secret}
      </code>
      <footer>
        <button type="button" onClick={() => copyText(props.secret).then(() => setCopied(true))}>
          {copied ? t('common.copied') : t('common.copy')}
        </button>
        <button type="button" className="primary" onClick={props.onClose}>
          {t('common.done')}
        </button>
      </footer>
    </Modal>
  );
}

export interface Paged<T> {
  items: T[];
  error?: string;
  loading: boolean;
  hasMore: boolean;
  more(): void;
  reload(): void;
}

/** A cursor-paged list: the first page when `deps` change, the next on `more()`. */
export function usePaged<T>(load: (cursor: string | number | null) => Promise<Page<T>>, deps: unknown[]): Paged<T> {
  const [state, setState] = useState<{ items: T[]; cursor: string | number | null; error?: string; loading: boolean }>({
    items: [],
    cursor: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState({ items: [], cursor: null, loading: true });
    load(null).then(
      (p) => live && setState({ items: p.data, cursor: p.next_cursor, loading: false }),
      (e: unknown) => live && setState({ items: [], cursor: null, loading: false, error: errorText(e) }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);

  function more() {
    if (state.cursor === null || state.loading) return;
    setState((s) => ({ ...s, loading: true }));
    load(state.cursor).then(
      (p) => setState((s) => ({ items: [...s.items, ...p.data], cursor: p.next_cursor, loading: false })),
      (e: unknown) => setState((s) => ({ ...s, loading: false, error: errorText(e) })),
    );
  }

  return { ...state, hasMore: state.cursor !== null, more, reload: () => setTick((t) => t + 1) };
}

export function MoreButton({ list }: { list: Paged<unknown> }) {
  if (list.error) return <ErrorNote error={list.error} />;
  if (list.loading) return <p className="muted">{t('common.loading')}</p>;
  return list.hasMore ? (
    <button type="button" className="more" onClick={list.more}>
      {t('common.loadMore')}
    </button>
  ) : null;
}

/**
 * Tables wider than the screen scroll inside themselves (a phone's 390 px);
 * one that scrolls is made a tab stop, so the keyboard can scroll it too
 * (WCAG 2.1.1). Watches the page as it changes and the window as it resizes.
 */
export function useScrollableTablesFocusable(): void {
  useEffect(() => {
    const mark = () => {
      for (const table of document.querySelectorAll<HTMLTableElement>('main table')) {
        const scrolls = table.scrollWidth > table.clientWidth + 1;
        if (scrolls && table.tabIndex !== 0) table.tabIndex = 0;
        if (!scrolls && table.hasAttribute('tabindex')) table.removeAttribute('tabindex');
      }
    };
    let queued = 0;
    const soon = () => {
      cancelAnimationFrame(queued);
      queued = requestAnimationFrame(mark);
    };
    const observer = new MutationObserver(soon);
    // The page's <main> is replaced on each navigation: watch what holds it.
    observer.observe(document.body, { childList: true, subtree: true });
    window.addEventListener('resize', soon);
    mark();
    return () => {
      observer.disconnect();
      window.removeEventListener('resize', soon);
      cancelAnimationFrame(queued);
    };
  }, []);
}

/** `value` once it has stopped changing for `ms` (what a search box asks Hub for). */
export function useDebounced<T>(value: T, ms = 250): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}
