import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkParameters, readTools, toolErrors, toolText, DEFAULT_PARAMETERS } from '../src/tools.js';
import { errorFromBody } from '../src/api.js';

test('parameters: an object schema passes, empty text is the empty schema', () => {
  const schema = { type: 'object', properties: { date: { type: 'string' } }, required: ['date'] };
  assert.deepEqual(checkParameters(JSON.stringify(schema)), { value: schema, error: null });
  assert.deepEqual(checkParameters('  '), { value: { type: 'object', properties: {} }, error: null });
  assert.deepEqual(checkParameters(DEFAULT_PARAMETERS).error, null);
  assert.deepEqual(checkParameters('{"type": "object"}').error, null);
});

test('parameters: what the API refuses is refused with a reason', () => {
  assert.match(String(checkParameters('{type: object}').error), /^Not valid JSON/);
  assert.match(String(checkParameters('[1]').error), /must be a JSON object/);
  assert.match(String(checkParameters('null').error), /must be a JSON object/);
  assert.match(String(checkParameters('"x"').error), /must be a JSON object/);
  assert.match(String(checkParameters('{"type": "string"}').error), /"type": "object"/);
  assert.match(String(checkParameters('{"type": "object", "properties": []}').error), /"properties" must map/);
  assert.match(String(checkParameters('{"type": "object", "properties": {"a": "string"}}').error), /"properties" must map/);
  assert.match(String(checkParameters('{"type": "object", "required": "a"}').error), /"required" must be a list/);
  assert.match(String(checkParameters('{"type": "object", "required": [1]}').error), /"required" must be a list/);
  const big = JSON.stringify({ type: 'object', properties: { a: { type: 'string', description: 'é'.repeat(8200) } } });
  assert.match(String(checkParameters(big).error), /more than 16 KB/);
});

test('reading tools: trimmed, defaults, every field checked, repeated names refused', () => {
  const good = { name: 'book_slot', description: ' Books a slot. ', parameters: '', url: 'https://example.com/book', timeout_s: '' };
  assert.deepEqual(readTools([good]), {
    tools: [{ name: 'book_slot', description: 'Books a slot.', parameters: { type: 'object', properties: {} }, url: 'https://example.com/book', timeout_s: 8 }],
    errors: [{}],
  });
  const result = readTools([
    good,
    { name: 'book_slot', description: '', parameters: '{"type": "array"}', url: 'ftp://x', timeout_s: '21' },
    { name: 'transfer_to_human', description: 'x', parameters: '', url: 'https://example.com', timeout_s: '1.5' },
    { name: 'Bad-Name', description: 'x', parameters: '', url: 'https://example.com', timeout_s: '20' },
  ]);
  assert.equal(result.tools, null);
  assert.deepEqual(Object.keys(result.errors[1]).sort(), ['description', 'name', 'parameters', 'timeout_s', 'url']);
  assert.match(String(result.errors[1].name), /tool 1/);
  assert.match(String(result.errors[2].name), /built-in/);
  assert.match(String(result.errors[2].timeout_s), /1 to 20/);
  assert.deepEqual(Object.keys(result.errors[3]), ['name']);
  assert.deepEqual(readTools([]), { tools: [], errors: [] });
});

test('a tool as its form shows it', () => {
  assert.deepEqual(toolText({ name: 'a', description: 'b', parameters: { type: 'object' }, url: 'https://x', timeout_s: 3 }),
    { name: 'a', description: 'b', parameters: '{\n  "type": "object"\n}', url: 'https://x', timeout_s: '3' });
  assert.equal(toolText().parameters, DEFAULT_PARAMETERS);
  assert.equal(toolText().timeout_s, '8');
});

test("the API's 422s land on the tool and field they name", () => {
  const error = errorFromBody(422, { detail: [
    { loc: ['body', 'tools', 1, 'url'], msg: 'the address is private', type: 'value_error' },
    { loc: ['body', 'tools', 1, 'name'], msg: "tool name 'a' is already used by tools[0]", type: 'value_error' },
    { loc: ['body', 'tools', 0, 'parameters'], msg: 'Value error, the parameters schema must be {"type": "object", ...} at its top level', type: 'value_error' },
    { loc: ['body', 'tools', 2], msg: 'Input should be a valid dictionary', type: 'dict_type' },
    { loc: ['body', 'tools', 2, 'extra'], msg: 'Extra inputs are not permitted', type: 'extra_forbidden' },
    { loc: ['body', 'name'], msg: 'Field required', type: 'missing' },
  ] });
  const { byTool, other } = toolErrors(error.fields);
  assert.deepEqual(byTool.get(1), { url: 'the address is private', name: "tool name 'a' is already used by tools[0]" });
  assert.deepEqual(byTool.get(0), { parameters: 'the parameters schema must be {"type": "object", ...} at its top level' });
  assert.deepEqual(byTool.get(2), { tool: 'Input should be a valid dictionary; Extra inputs are not permitted' });
  assert.deepEqual(other, [{ field: 'name', message: 'Field required' }]);
});
