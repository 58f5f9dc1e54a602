/** Server-sent events, as an OpenAI-style stream sends them. */

/** Splits the data lines of complete events off `buffer`; `rest` is an unfinished event to keep. */
export function takeEvents(buffer: string): { data: string[]; rest: string } {
  const blocks = buffer.replace(/\r\n/g, '\n').split('\n\n');
  const rest = blocks.pop() ?? '';
  const data = blocks
    .map((block) =>
      block
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n'),
    )
    .filter((d) => d !== '');
  return { data, rest };
}
