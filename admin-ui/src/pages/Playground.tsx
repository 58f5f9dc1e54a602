import { useRef, useState, type FormEvent } from 'react';
import { api, ApiError, failure, send, type Call, type Page } from '../api';
import { count, ms } from '../format';
import { t } from '../i18n';
import { sum } from '../money';
import { takeEvents } from '../sse';
import { ErrorNote, Field, LoadError, Stat, useLoad, useMoney, useSession } from '../ui';

interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

interface Outcome {
  callId: string | null;
  model: string;
  ttft: number | null;
  total: number;
  usage: { prompt_tokens: number; completion_tokens: number } | null;
  /** Credits from the call log; null until the call has settled. */
  credits: string | null;
}

interface Chunk {
  choices?: { delta?: { content?: string | null } }[];
  usage?: Outcome['usage'];
  error?: { message?: string };
}

/** Streams one chat completion, calling `onText` per piece; resolves with its timings and usage. */
async function streamChat(model: string, messages: Message[], maxTokens: number | null, onText: (piece: string) => void, signal: AbortSignal) {
  const started = performance.now();
  const res = await send('/v1/chat/completions', {
    headers: { 'x-hub-app': 'playground' },
    body: {
      model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
      ...(maxTokens ? { max_tokens: maxTokens } : {}),
    },
    signal,
  });
  if (!res.ok || !res.body) throw failure(res, await res.json().catch(() => null));
  const callId = res.headers.get('x-hub-call-id');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let rest = '';
  let ttft: number | null = null;
  let usage: Outcome['usage'] = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const events = takeEvents(rest + value);
    rest = events.rest;
    for (const data of events.data) {
      if (data === '[DONE]') continue;
      const chunk = JSON.parse(data) as Chunk;
      if (chunk.error) throw new ApiError(chunk.error.message ?? t('playground.midStream'), 502);
      const text = chunk.choices?.[0]?.delta?.content;
      if (text) {
        ttft ??= performance.now() - started;
        onText(text);
      }
      if (chunk.usage) usage = chunk.usage;
    }
  }
  return { callId, ttft, total: performance.now() - started, usage };
}

/** The call's credits once settlement has written them (asynchronously; a few seconds at most). */
async function settledCredits(callId: string): Promise<string | null> {
  for (let i = 0; i < 20; i++) {
    const rows = (await api<Page<Call>>('/api/me/calls', { query: { limit: 20 } })).data.filter((c) => c.call_id === callId);
    if (rows.length) return sum(rows.map((r) => r.credits));
    await new Promise((r) => setTimeout(r, 250));
  }
  return null;
}

export function Playground() {
  const session = useSession();
  const money = useMoney();
  const models = useLoad(
    () => api<{ data: { id: string; type?: string }[] }>('/v1/models').then((r) => r.data.filter((m) => (m.type ?? 'chat') === 'chat').map((m) => m.id)),
    [],
  );
  const [model, setModel] = useState('');
  const [system, setSystem] = useState('');
  const [maxTokens, setMaxTokens] = useState('');
  const [input, setInput] = useState('');
  const [messages, setMessages] = useState<Message[]>([]);
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const abort = useRef<AbortController | null>(null);
  const chosen = model || models.data?.[0] || '';

  async function send(e: FormEvent) {
    e.preventDefault();
    if (!input.trim() || !chosen) return;
    const history: Message[] = [...messages, { role: 'user', content: input.trim() }];
    setMessages([...history, { role: 'assistant', content: '' }]);
    setInput('');
    setError(null);
    setOutcome(null);
    setStreaming(true);
    abort.current = new AbortController();
    try {
      const sent = system.trim() ? [{ role: 'system' as const, content: system.trim() }, ...history] : history;
      const r = await streamChat(
        chosen,
        sent,
        maxTokens ? Number(maxTokens) : null,
        (piece) => setMessages((prev) => [...prev.slice(0, -1), { role: 'assistant', content: prev[prev.length - 1].content + piece }]),
        abort.current.signal,
      );
      const result: Outcome = { ...r, model: chosen, credits: null };
      setOutcome(result);
      if (r.callId) {
        const credits = await settledCredits(r.callId);
        setOutcome({ ...result, credits });
        session.refresh();
      }
    } catch (err) {
      if (!(err instanceof DOMException && err.name === 'AbortError')) setError(err instanceof Error ? err.message : String(err));
    } finally {
      setStreaming(false);
    }
  }

  return (
    <>
      <div className="toolbar">
        <h1>{t('nav.playground')}</h1>
        <button type="button" onClick={() => (setMessages([]), setOutcome(null))} disabled={streaming || !messages.length}>
          {t('playground.clear')}
        </button>
      </div>
      <LoadError state={models} />
      <div className="playground">
        <div className="settings-col">
          <Field label={t('call.model')}>
            <select name="model" value={chosen} onChange={(e) => setModel(e.target.value)}>
              {models.data?.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </Field>
          {models.data?.length === 0 && <p className="muted">{t('playground.noModels')}</p>}
          <Field label={t('playground.system')}>
            <textarea name="system" rows={4} value={system} onChange={(e) => setSystem(e.target.value)} />
          </Field>
          <Field label={t('playground.maxTokens')}>
            <input name="max_tokens" type="number" min={1} value={maxTokens} onChange={(e) => setMaxTokens(e.target.value)} />
          </Field>
          {outcome && (
            <div className="stats narrow" data-testid="call-stats">
              <Stat label={t('playground.ttft')} value={ms(outcome.ttft)} />
              <Stat label={t('playground.total')} value={ms(outcome.total)} />
              <Stat
                label={t('usage.tokens')}
                value={outcome.usage ? count(outcome.usage.prompt_tokens + outcome.usage.completion_tokens) : '—'}
                sub={
                  outcome.usage &&
                  t('usage.inOut', { input: count(outcome.usage.prompt_tokens), output: count(outcome.usage.completion_tokens) })
                }
              />
              <Stat
                label={t('usage.credits')}
                value={<span data-testid="credits">{outcome.credits === null ? t('playground.settling') : money(outcome.credits)}</span>}
                sub={outcome.callId && <code>{outcome.callId}</code>}
              />
            </div>
          )}
        </div>
        <div className="chat">
          <div className="messages" aria-live="polite">
            {messages.length === 0 && <p className="muted">{t('playground.empty')}</p>}
            {messages.map((m, i) => (
              <div key={i} className={`message ${m.role}`}>
                <span>{m.role === 'user' ? t('playground.you') : chosen}</span>
                <p>{m.content || (streaming && i === messages.length - 1 ? '…' : '')}</p>
              </div>
            ))}
          </div>
          <ErrorNote error={error} />
          <form onSubmit={send} className="composer">
            <textarea
              name="prompt"
              rows={3}
              placeholder={t('playground.placeholder')}
              value={input}
              onChange={(e) => setInput(e.target.value)}
              onKeyDown={(e) => e.key === 'Enter' && (e.ctrlKey || e.metaKey) && e.currentTarget.form?.requestSubmit()}
            />
            {streaming ? (
              <button type="button" onClick={() => abort.current?.abort()}>
                {t('playground.stop')}
              </button>
            ) : (
              <button type="submit" className="primary" disabled={!input.trim() || !chosen}>
                {t('playground.send')}
              </button>
            )}
          </form>
        </div>
      </div>
    </>
  );
}
