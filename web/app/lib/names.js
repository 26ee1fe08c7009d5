// Operations written in Hasura's default names, adapted to the names the server serves.
//
// A deployment may customize the API's names as Hasura does (naming convention, prefixes,
// a namespace: docs/graphql-api.md#names-hasuras-source-customization). The server
// announces them at `GET /v1/graphql/names`: for every type under its default name, the
// served names of the type, its fields and their arguments, its input fields and enum
// values, and the default type of each (service/graphql/schema/names.py). From that map,
// `createAdapter(map)` rewrites an operation and its variables, and answers keep the
// shape the operation was written for: a renamed field is aliased to its default name, and
// the namespace field is unwrapped. With no customization the map names nothing
// differently and operations go out unchanged.
import { Kind, parse, print } from 'graphql';

const name = (value) => ({ kind: Kind.NAME, value });

export function createAdapter(map) {
  const types = map.types || {};
  const namespace = map.namespace || null;
  const roots = map.roots || {};
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

  function selections(selectionSet, parent) {
    if (!selectionSet) return selectionSet;
    return {
      ...selectionSet,
      selections: selectionSet.selections.map((selection) => {
        if (selection.kind === Kind.INLINE_FRAGMENT) {
          const condition = selection.typeCondition?.name.value ?? parent;
          return {
            ...selection,
            typeCondition: selection.typeCondition && typeRef(selection.typeCondition),
            selectionSet: selections(selection.selectionSet, condition),
          };
        }
        if (selection.kind !== Kind.FIELD) return selection;
        const field = types[parent]?.fields?.[selection.name.value];
        if (!field) return selection; // __typename, or a name the server will refuse
        const servedName = field.name ?? selection.name.value;
        const renamed = servedName !== selection.name.value;
        return {
          ...selection,
          alias: selection.alias ?? (renamed ? selection.name : undefined),
          name: name(servedName),
          arguments: (selection.arguments || []).map((argument) => {
            const declared = field.args?.[argument.name.value];
            return {
              ...argument,
              name: name(declared?.name ?? argument.name.value),
              value: value(argument.value, declared?.type),
            };
          }),
          selectionSet: selections(selection.selectionSet, field.type),
        };
      }),
    };
  }

  /** `{query, variables}` in the served names, for `query` and `variables` in the default ones. */
  function operation(query, variables = {}) {
    const document = parse(query);
    const variableTypes = {};
    const definitions = document.definitions.map((definition) => {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) {
        const condition = definition.typeCondition.name.value;
        return {
          ...definition,
          typeCondition: typeRef(definition.typeCondition),
          selectionSet: selections(definition.selectionSet, condition),
        };
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
      let selectionSet = selections(definition.selectionSet, roots[definition.operation]);
      if (namespace) {
        const wrapper = { kind: Kind.FIELD, name: name(namespace), arguments: [], directives: [], selectionSet };
        selectionSet = { kind: Kind.SELECTION_SET, selections: [wrapper] };
      }
      return { ...definition, variableDefinitions, selectionSet };
    });
    const adapted = {};
    for (const [key, item] of Object.entries(variables || {})) adapted[key] = json(item, variableTypes[key]);
    return { query: print({ ...document, definitions }), variables: adapted };
  }

  /** An answer's `data` in the shape the operation was written for. */
  function data(answer) {
    if (!namespace || answer === null || answer === undefined) return answer;
    return answer[namespace] ?? null;
  }

  /** The default names of the fields of `typeName` (a default name) the caller may read;
   * `queryRoot` and `mutationRoot` name the root types (mutationRoot null: no mutations).
   * This is what introspection would tell, in the names the client's operations use. */
  function readable(typeName) {
    return Object.keys(types[typeName]?.fields || {});
  }

  return {
    operation,
    data,
    namespace,
    readable,
    queryRoot: roots.query,
    mutationRoot: roots.mutation ?? null,
  };
}
