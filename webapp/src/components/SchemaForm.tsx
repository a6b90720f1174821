// A form generated from the workflow JSON Schema: one input per field of a Struct (`Node`,
// `Workflow`), nested Structs as fieldsets, anything else as JSON. Empty input removes the key.

import { useEffect, useState } from 'react';
import { parseInput, showValue, type FieldSpec } from '../format/schema';

const FIRST = ['executor', 'command', 'script', 'callable', 'resources', 'retries', 'retry_backoff', 'timeout', 'priority', 'matrix', 'env', 'workdir', 'description'];

function FieldInput({ spec, value, onChange, path }: { spec: FieldSpec; value: unknown; onChange: (v: unknown) => void; path: string }) {
  const [text, setText] = useState(() => showValue(spec.kind, value));
  const [error, setError] = useState('');
  useEffect(() => {
    setText(showValue(spec.kind, value));
    setError('');
  }, [value, spec.kind]);
  const commit = (t: string) => {
    const out = parseInput(spec.kind, t);
    if (out.error) setError(out.error);
    else {
      setError('');
      onChange(out.value);
    }
  };
  const id = `f-${path}`;
  if (spec.kind === 'boolean') {
    return <label className="field inline" htmlFor={id}><input id={id} name={path} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked ? true : undefined)} /> {spec.name}</label>;
  }
  let input: React.ReactNode;
  if (spec.kind === 'select') {
    input = (
      <select id={id} name={path} value={value === undefined ? '' : String(value)} onChange={(e) => onChange(e.target.value || undefined)}>
        <option value="">(default)</option>
        {spec.options!.map((o) => <option key={o} value={o}>{o}</option>)}
      </select>
    );
  } else if (spec.kind === 'json' || spec.kind === 'textOrList') {
    input = <textarea id={id} name={path} rows={spec.kind === 'json' ? 3 : 2} value={text} onChange={(e) => setText(e.target.value)} onBlur={(e) => commit(e.target.value)} />;
  } else {
    input = <input id={id} name={path} type={spec.kind === 'text' ? 'text' : 'number'} step={spec.kind === 'integer' ? 1 : 'any'} value={text} onChange={(e) => setText(e.target.value)} onBlur={(e) => commit(e.target.value)} />;
  }
  return (
    <label className="field" htmlFor={id} title={spec.description}>
      <span>{spec.name}</span>
      {input}
      {error && <span className="error">{error}</span>}
    </label>
  );
}

export function SchemaForm({ fields, value, onChange, errors = {}, path = '' }: {
  fields: FieldSpec[];
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
  errors?: Record<string, string>;
  path?: string;
}) {
  const set = (name: string, v: unknown) => {
    const next = { ...value };
    if (v === undefined || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0)) delete next[name];
    else next[name] = v;
    onChange(next);
  };
  const ordered = [...fields].sort((a, b) => (FIRST.indexOf(a.name) + 1 || 99) - (FIRST.indexOf(b.name) + 1 || 99));
  const main = ordered.filter((f) => FIRST.includes(f.name) || f.name in value);
  const rest = ordered.filter((f) => !main.includes(f));
  const render = (f: FieldSpec) => (
    <div key={f.name} className={errors[f.name] ? 'field-wrap has-error' : 'field-wrap'}>
      {f.kind === 'object' && f.fields ? (
        <fieldset>
          <legend>{f.name}</legend>
          <SchemaForm fields={f.fields} value={(value[f.name] as Record<string, unknown>) ?? {}} onChange={(v) => set(f.name, v)} path={`${path}${f.name}.`} />
        </fieldset>
      ) : (
        <FieldInput spec={f} value={value[f.name]} onChange={(v) => set(f.name, v)} path={`${path}${f.name}`} />
      )}
      {errors[f.name] && <div className="error" data-testid={`field-error-${f.name}`}>{errors[f.name]}</div>}
    </div>
  );
  return (
    <div className="schema-form">
      {main.map(render)}
      {rest.length > 0 && <details><summary>more fields ({rest.length})</summary>{rest.map(render)}</details>}
    </div>
  );
}
