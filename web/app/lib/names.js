// Operations written in Hasura's default names, adapted to the names the server serves.
//
// A deployment may customize the API's names as Hasura does (naming convention, prefixes,
// a namespace: docs/graphql-api.md#names-hasuras-source-customization). The server
// announces them at `GET /v1/graphql/names`: for every type under its default name, the
// served names of the type, its fields and their arguments, its input fields and enum
// values, and the default type of each (service/graphql/schema/names.py). From that map,
// `createAdapter(map)` rewrites an operation and its variables, and answers get back the
// shape the operation was written for: renamed fields get their default names back, and
// the namespace field is unwrapped. With no customization the map names nothing
// differently: the adapter is then an identity, and graphql-js is never loaded.

/** Whether `map` (the server's names) renames anything, or has a namespace. */
export function isCustomized(map) {
  if (map.namespace) return true;
  const renamed = (items) => Object.values(items || {}).some((item) => 'name' in item);
  return Object.values(map.types || {}).some(
    (type) =>
      'name' in type ||
      Object.keys(type.values || {}).length > 0 ||
      renamed(type.inputFields) ||
      Object.values(type.fields || {}).some((field) => 'name' in field || renamed(field.args)),
  );
}

/**
 * The adapter for the server's names `map`: `operation(query, variables)` (see below),
 * `readable(typeName)`, and the root types' default names. Async: a customized
 * map loads graphql-js (its parser and printer only) the first time.
 */
export async function createAdapter(map) {
  const types = map.types || {};
  const namespace = map.namespace || null;
  const roots = map.roots || {};

  /** The default names of the fields of `typeName` (a default name) the caller may read;
   * `queryRoot` and `mutationRoot` name the root types (mutationRoot null: no mutations).
   * This is what introspection would tell, in the names the client's operations use. */
  function readable(typeName) {
    return Object.keys(types[typeName]?.fields || {});
  }

  const described = { namespace, readable, queryRoot: roots.query, mutationRoot: roots.mutation ?? null };
  if (!isCustomized(map)) {
    const operation = (query, variables = {}) => ({ query, variables, data: (answer) => answer });
    return { ...described, operation };
  }

  // The language module alone: the whole package is ~130 modules, this is ~20.
  const { Kind, parse, print } = await import('graphql/language/index.mjs');
  const name = (value) => ({ kind: Kind.NAME, value });
  const served = (typeName) => types[typeName]?.name ?? typeName;

  function typeRef(node) {
    if (node.kind === Kind.NAMED_TYPE) return { ...node, name: name(served(node.name.value)) };
    return { ...node, type: typeRef(node.type) };
  }

  function namedType(node) {
    return node.kind === Kind.NAMED_TYPE ? node.name.value : namedType(node.type);
  }

  function value(node, typeName) {
    if (!node || !typeName) return node;
    switch (node.kind) {
      case Kind.LIST:
        return { ...node, values: node.values.map((item) => value(item, typeName)) };
      case Kind.OBJECT: {
        const inputs = types[typeName]?.inputFields || {};
        return {
          ...node,
          fields: node.fields.map((field) => {
            const input = inputs[field.name.value];
            return {
              ...field,
              name: name(input?.name ?? field.name.value),
              value: value(field.value, input?.type),
            };
          }),
        };
      }
      case Kind.ENUM:
        return { ...node, value: types[typeName]?.values?.[node.value] ?? node.value };
      default:
        return node;
    }
  }

  function json(given, typeName) {
    if (given === null || given === undefined || !typeName) return given;
    if (Array.isArray(given)) return given.map((item) => json(item, typeName));
    const type = types[typeName];
    if (typeof given === 'object' && type?.inputFields) {
      const result = {};
      for (const [key, item] of Object.entries(given)) {
        const input = type.inputFields[key];
        result[input?.name ?? key] = json(item, input?.type);
      }
      return result;
    }
    if (typeof given === 'string' && type?.values) return type.values[given] ?? given;
    return given;
  }

  // Each selection set is rewritten with its shape: what to rename in the answer. A shape
  // is a list of steps, `{key, as, shape}` (the field's key in the answer, the key the
  // operation expects, the field's own shape) or `{fragment}` (a fragment's steps).
  // Renamed fields are renamed back in the answer rather than aliased in the operation:
  // aliases count against the server's limit on them, and a batch can be near it.
  function selections(selectionSet, parent) {
    const shape = [];
    if (!selectionSet) return { selectionSet, shape: null };
    const rewritten = selectionSet.selections.map((selection) => {
      if (selection.kind === Kind.FRAGMENT_SPREAD) {
        shape.push({ fragment: selection.name.value });
        return selection;
      }
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        const condition = selection.typeCondition?.name.value ?? parent;
        const inner = selections(selection.selectionSet, condition);
        shape.push(...inner.shape);
        return {
          ...selection,
          typeCondition: selection.typeCondition && typeRef(selection.typeCondition),
          selectionSet: inner.selectionSet,
        };
      }
      const field = types[parent]?.fields?.[selection.name.value];
      const key = selection.alias?.value ?? selection.name.value;
      if (!field) {
        // __typename, or a name the server will refuse: as written
        shape.push({ key, as: key, shape: null });
        return selection;
      }
      const servedName = field.name ?? selection.name.value;
      const inner = selections(selection.selectionSet, field.type);
      shape.push({ key: selection.alias ? key : servedName, as: key, shape: inner.shape });
      return {
        ...selection,
        name: name(servedName),
        arguments: (selection.arguments || []).map((argument) => {
          const declared = field.args?.[argument.name.value];
          return {
            ...argument,
            name: name(declared?.name ?? argument.name.value),
            value: value(argument.value, declared?.type),
          };
        }),
        selectionSet: inner.selectionSet,
      };
    });
    return { selectionSet: { ...selectionSet, selections: rewritten }, shape };
  }

  /** A shape's steps by answer key (fragments expanded, one field's selections merged),
   * or null when nothing under it is renamed. */
  function plan(shape, fragments) {
    const steps = new Map();
    const collect = (items) => {
      for (const item of items) {
        if (item.fragment) collect(fragments[item.fragment] || []);
        else if (steps.has(item.key)) steps.get(item.key).shape.push(...(item.shape || []));
        else steps.set(item.key, { as: item.as, shape: [...(item.shape || [])] });
      }
    };
    collect(shape || []);
    let renames = false;
    for (const [key, step] of steps) {
      step.plan = plan(step.shape, fragments);
      renames ||= step.as !== key || step.plan !== null;
    }
    return renames ? steps : null;
  }

  function reshape(value, steps) {
    if (!steps || value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((item) => reshape(item, steps));
    const result = {};
    for (const [key, item] of Object.entries(value)) {
      const step = steps.get(key);
      if (step) result[step.as] = reshape(item, step.plan);
      else result[key] = item;
    }
    return result;
  }

  // Pages send the same operations again and again (with new variables): each is
  // rewritten once.
  const rewrites = new Map();
  const REWRITES_KEPT = 200;

  function rewrite(query) {
    const document = parse(query);
    const variableTypes = {};
    const fragments = {};
    let root = null;
    const definitions = document.definitions.map((definition) => {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) {
        const inner = selections(definition.selectionSet, definition.typeCondition.name.value);
        fragments[definition.name.value] = inner.shape;
        return { ...definition, typeCondition: typeRef(definition.typeCondition), selectionSet: inner.selectionSet };
      }
      if (definition.kind !== Kind.OPERATION_DEFINITION) return definition;
      const variableDefinitions = (definition.variableDefinitions || []).map((variable) => {
        const typeName = namedType(variable.type);
        variableTypes[variable.variable.name.value] = typeName;
        return {
          ...variable,
          type: typeRef(variable.type),
          defaultValue: value(variable.defaultValue, typeName),
        };
      });
      const inner = selections(definition.selectionSet, roots[definition.operation]);
      root = inner.shape;
      let selectionSet = inner.selectionSet;
      if (namespace) {
        const wrapper = { kind: Kind.FIELD, name: name(namespace), arguments: [], directives: [], selectionSet };
        selectionSet = { kind: Kind.SELECTION_SET, selections: [wrapper] };
      }
      return { ...definition, variableDefinitions, selectionSet };
    });
    return { query: print({ ...document, definitions }), variableTypes, steps: plan(root, fragments) };
  }

  /**
   * `{query, variables, data}` for `query` and `variables` written in the default names:
   * the operation and its variables in the served names, and `data(answer)`, which gives
   * the `data` of the server's answer in the names and shape the operation was written for.
   */
  function operation(query, variables = {}) {
    let rewritten = rewrites.get(query);
    if (!rewritten) {
      rewritten = rewrite(query);
      if (rewrites.size >= REWRITES_KEPT) rewrites.delete(rewrites.keys().next().value);
      rewrites.set(query, rewritten);
    }
    const adapted = {};
    for (const [key, item] of Object.entries(variables || {})) adapted[key] = json(item, rewritten.variableTypes[key]);
    const data = (answer) => {
      const unwrapped = namespace && answer !== null && answer !== undefined ? (answer[namespace] ?? null) : answer;
      return reshape(unwrapped, rewritten.steps);
    };
    return { query: rewritten.query, variables: adapted, data };
  }

  return { ...described, operation };
}
