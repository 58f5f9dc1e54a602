/**
 * JSON parsing that keeps money exact: number literals under money keys are
 * kept as their decimal text (a string) instead of becoming floats.
 */

const MONEY_KEYS = new Set([
  'balance',
  'held',
  'available',
  'amount',
  'credits',
  'starter_credits',
  'credit_price_usd',
  'margin_percent',
  // unit_costs: USD per million tokens (per image for `image`)
  'input',
  'output',
  'cache_read',
  'cache_write',
  'image',
]);

function isMoneyKey(key: string): boolean {
  return MONEY_KEYS.has(key) || key.endsWith('_rate') || key.endsWith('_cap');
}

/** Parses JSON text; numbers whose key satisfies `keep` arrive as strings holding their literal. */
export function parseJson<T>(text: string, keep: (key: string) => boolean = isMoneyKey): T {
  const out: string[] = [];
  let key = '';
  let copied = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const literal = text.slice(i, j + 1);
      i = j + 1;
      while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
      if (text[i] === ':') key = JSON.parse(literal) as string;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && /[-+.eE0-9]/.test(text[j])) j++;
      if (keep(key)) out.push(text.slice(copied, i), `"${text.slice(i, j)}"`), (copied = j);
      i = j;
    } else {
      i++;
    }
  }
  out.push(text.slice(copied));
  return JSON.parse(out.join('')) as T;
}
