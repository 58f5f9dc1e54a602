import { describe, expect, it } from 'vitest';
import { changedFields, shortValue } from './audit';

describe('changedFields', () => {
  it('lists the fields that differ, not updated_at', () => {
    const before = { id: 'mdl_1', input_rate: '1', enabled: true, updated_at: 'a' };
    const after = { id: 'mdl_1', input_rate: '2', enabled: true, updated_at: 'b' };
    expect(changedFields(before, after)).toEqual([{ field: 'input_rate', before: '1', after: '2' }]);
  });

  it('shows a create or a delete as every field appearing or going', () => {
    expect(changedFields(null, { id: 'x', name: 'n' }).map((c) => c.field)).toEqual(['id', 'name']);
    expect(changedFields({ id: 'x' }, null)).toEqual([{ field: 'id', before: 'x', after: undefined }]);
  });

  it('compares nested values by content', () => {
    expect(changedFields({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toEqual([]);
    expect(changedFields({ a: [1] }, { a: [2] })).toHaveLength(1);
  });
});

describe('shortValue', () => {
  it('writes strings as they are and the rest as JSON', () => {
    expect(shortValue('sk-a****1234')).toBe('sk-a****1234');
    expect(shortValue(null)).toBe('—');
    expect(shortValue(['a'])).toBe('["a"]');
  });
});
