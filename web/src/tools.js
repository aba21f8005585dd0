// An agent's HTTP tools: checking a tool as typed (its parameters as JSON Schema text) before
// sending it, and putting the API's 422s back on the tool field they name. Pure functions.

export const TOOL_NAME = /^[a-z][a-z0-9_]{0,63}$/;
export const TRANSFER_TOOL = 'transfer_to_human';
export const MAX_TOOLS = 20;
const MAX_PARAMETERS_BYTES = 16 * 1024;
export const DEFAULT_PARAMETERS = '{\n  "type": "object",\n  "properties": {},\n  "required": []\n}';

/**
 * @typedef {{name: string, description: string, parameters: Record<string, any>, url: string,
 *   timeout_s: number}} Tool
 * @typedef {{name: string, description: string, parameters: string, url: string, timeout_s: string}} ToolText
 *   a tool as its form holds it
 * @typedef {Partial<Record<keyof ToolText, string>>} ToolErrors a message per field
 */

/**
 * The parameters' JSON Schema from its text, checked as the API checks it: JSON, an object with
 * `"type": "object"`, `properties` mapping names to schemas, `required` a list of names, 16 KB
 * at most. Empty text is the empty object schema.
 * @param {string} text
 * @returns {{value: Record<string, any>, error: null} | {value: null, error: string}}
 */
export function checkParameters(text) {
  if (!String(text ?? '').trim()) return { value: { type: 'object', properties: {} }, error: null };
  /** @type {unknown} */
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { value: null, error: `Not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    return { value: null, error: 'The parameters must be a JSON object: {"type": "object", "properties": {…}}.' };
  }
  const schema = /** @type {Record<string, any>} */ (value);
  if (schema.type !== 'object') return { value: null, error: 'The schema must have "type": "object" at its top level.' };
  const properties = schema.properties ?? {};
  if (!isPlainObject(properties) || !Object.values(properties).every(isPlainObject)) {
    return { value: null, error: '"properties" must map each parameter\'s name to its JSON Schema (an object).' };
  }
  const required = schema.required ?? [];
  if (!Array.isArray(required) || !required.every((item) => typeof item === 'string')) {
    return { value: null, error: '"required" must be a list of parameter names.' };
  }
  const size = new TextEncoder().encode(JSON.stringify(schema)).length;
  if (size > MAX_PARAMETERS_BYTES) return { value: null, error: `The schema is ${size} bytes, more than 16 KB.` };
  return { value: schema, error: null };
}

/** @param {unknown} value */
function isPlainObject(value) {
  return Boolean(value) && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Check tools as typed and build what the API takes. `errors[i]` has a message per field of
 * tool `i` (empty when it is fine); `tools` is null when any has an error.
 * @param {ToolText[]} texts
 * @returns {{tools: Tool[] | null, errors: ToolErrors[]}}
 */
export function readTools(texts) {
  /** @type {Tool[]} */
  const tools = [];
  /** @type {ToolErrors[]} */
  const errors = [];
  /** @type {Map<string, number>} */
  const names = new Map();
  let failed = texts.length > MAX_TOOLS;
  texts.forEach((text, index) => {
    /** @type {ToolErrors} */
    const problems = {};
    const name = text.name.trim();
    if (!TOOL_NAME.test(name)) problems.name = 'Lowercase letters, digits and _, starting with a letter (64 at most).';
    else if (name === TRANSFER_TOOL) problems.name = `${TRANSFER_TOOL} is the built-in transfer tool's name.`;
    else if (names.has(name)) problems.name = `Already the name of tool ${Number(names.get(name)) + 1}.`;
    if (name) names.set(name, names.get(name) ?? index);
    const description = text.description.trim();
    if (!description) problems.description = 'Say what the tool does and when to use it.';
    else if (description.length > 1000) problems.description = 'At most 1000 characters.';
    const parameters = checkParameters(text.parameters);
    if (parameters.error) problems.parameters = parameters.error;
    const url = text.url.trim();
    if (!/^https?:\/\/\S+$/i.test(url)) problems.url = 'An https:// address the platform can reach.';
    else if (url.length > 2000) problems.url = 'At most 2000 characters.';
    const timeout = text.timeout_s.trim() === '' ? 8 : Number(text.timeout_s);
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 20) problems.timeout_s = 'Whole seconds from 1 to 20.';
    errors.push(problems);
    if (Object.keys(problems).length) failed = true;
    else tools.push({ name, description, parameters: /** @type {Record<string, any>} */ (parameters.value), url, timeout_s: timeout });
  });
  return { tools: failed ? null : tools, errors };
}

/**
 * A tool as its form shows it.
 * @param {Partial<Tool>} [tool]
 * @returns {ToolText}
 */
export function toolText(tool = {}) {
  return {
    name: tool.name ?? '',
    description: tool.description ?? '',
    parameters: tool.parameters ? JSON.stringify(tool.parameters, null, 2) : DEFAULT_PARAMETERS,
    url: tool.url ?? '',
    timeout_s: String(tool.timeout_s ?? 8),
  };
}

const TOOL_FIELDS = ['name', 'description', 'parameters', 'url', 'timeout_s'];

/**
 * The API's 422 field errors about tools (`tools[2].url`, `tools[0].parameters`, `tools[1]`,
 * `tools`) by tool and field; the others are left in `other`. Pydantic's "Value error, " prefix
 * is dropped.
 * @param {{field: string, message: string}[]} fields
 * @returns {{byTool: Map<number, ToolErrors & {tool?: string}>, other: {field: string, message: string}[]}}
 */
export function toolErrors(fields) {
  /** @type {Map<number, ToolErrors & {tool?: string}>} */
  const byTool = new Map();
  /** @type {{field: string, message: string}[]} */
  const other = [];
  for (const item of fields ?? []) {
    const match = /^tools\[(\d+)\](?:\.([A-Za-z_]+))?/.exec(item.field ?? '');
    if (!match) {
      other.push(item);
      continue;
    }
    const index = Number(match[1]);
    const name = match[2] && TOOL_FIELDS.includes(match[2]) ? /** @type {keyof ToolText} */ (match[2]) : 'tool';
    const message = String(item.message).replace(/^Value error, /, '');
    const entry = byTool.get(index) ?? {};
    const key = /** @type {keyof ToolText | 'tool'} */ (name);
    entry[key] = entry[key] ? `${entry[key]}; ${message}` : message;
    byTool.set(index, entry);
  }
  return { byTool, other };
}
