/**
 * People as admin pages show them without loading every user: names looked
 * up for the ids a page holds (`?ids=`), and a user field that asks Hub to
 * search as it is typed (`?q=`).
 */

import { useEffect, useState } from 'react';
import { api, type Page, type User } from './api';
import { t } from './i18n';

/** How many ids one lookup names (the API's limit). */
const IDS_PER_LOOKUP = 100;

/** Names for the users among `ids`, fetched as ids appear; an unknown id names itself. */
export function useUserNames(ids: readonly (string | null | undefined)[]): (id: string) => string {
  const [names, setNames] = useState<ReadonlyMap<string, string>>(new Map());
  const wanted = [...new Set(ids.filter((id): id is string => !!id))].filter((id) => !names.has(id)).sort();
  const key = wanted.join(',');
  useEffect(() => {
    if (!key) return;
    let live = true;
    const chunks: string[][] = [];
    for (let i = 0; i < wanted.length; i += IDS_PER_LOOKUP) chunks.push(wanted.slice(i, i + IDS_PER_LOOKUP));
    void Promise.all(chunks.map((c) => api<Page<User>>('/api/admin/users', { query: { ids: c.join(',') } }).then((r) => r.data))).then(
      (found) => {
        if (!live) return;
        setNames((old) => {
          const next = new Map(old);
          for (const u of found.flat()) next.set(u.id, u.name);
          // Asked once: an id nobody has (a deleted user's) is shown as it is.
          for (const id of wanted) if (!next.has(id)) next.set(id, id);
          return next;
        });
      },
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [key]);
  return (id) => names.get(id) ?? id;
}

/** A filter's user field: type a name or email, pick from what Hub finds; its value is the user's id. */
export function UserPicker(props: { name: string; value: string; placeholder?: string; onChange(id: string): void }) {
  const [found, setFound] = useState<User[]>([]);
  const typed = props.value.trim();
  useEffect(() => {
    if (!typed) {
      setFound([]);
      return;
    }
    let live = true;
    // Asked once typing pauses, not at every key.
    const timer = setTimeout(() => {
      api<Page<User>>('/api/admin/users', { query: { q: typed, limit: 20 } }).then(
        (p) => live && setFound(p.data),
        () => live && setFound([]),
      );
    }, 200);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [typed]);
  const list = `${props.name}-people`;
  return (
    <>
      <input
        name={props.name}
        list={list}
        value={props.value}
        autoComplete="off"
        placeholder={props.placeholder ?? t('people.search')}
        onChange={(e) => props.onChange(e.target.value)}
      />
      <datalist id={list} data-testid={list}>
        {found.map((u) => (
          <option key={u.id} value={u.id}>
            {u.email ? `${u.name} · ${u.email}` : u.name}
          </option>
        ))}
      </datalist>
    </>
  );
}
