import { LANGUAGES, setLang, t, useLang, type Lang } from './i18n';

/** The site's language, chosen here and kept in this browser. */
export function LanguagePicker() {
  const current = useLang();
  return (
    <label className="language">
      <span className="sr-only">{t('lang.label')}</span>
      <select name="lang" value={current} onChange={(e) => setLang(e.target.value as Lang)}>
        {LANGUAGES.map((l) => (
          <option key={l.lang} value={l.lang} lang={l.tag}>
            {l.name}
          </option>
        ))}
      </select>
    </label>
  );
}
