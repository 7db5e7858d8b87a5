import { readFileSync } from 'node:fs';
import { loadFileDescriptorSetFromBuffer, type PackageDefinition } from '@grpc/proto-loader';
import { repoPath } from '../paths';

/** A field of a message as gen/descriptor.binpb describes it. */
export interface FieldShape {
  name: string;
  number: number;
  /** The descriptor's type name: TYPE_STRING, TYPE_INT64, TYPE_MESSAGE, ... */
  type: string;
  repeated: boolean;
  /** TYPE_MESSAGE: the field's message. */
  message?: MessageShape;
  /** TYPE_ENUM: the numbers the enum defines. */
  enumValues?: number[];
}

/** A message type: its fields, by number too. */
export interface MessageShape {
  fullName: string;
  fields: FieldShape[];
  byNumber: ReadonlyMap<number, FieldShape>;
}

/** One rpc of a service in the descriptor set. */
export interface MethodShape {
  /** `wristpay.risk.v1.RiskService` */
  service: string;
  /** `Score` */
  method: string;
  /** `/wristpay.risk.v1.RiskService/Score` */
  path: string;
  responseStream: boolean;
  request: MessageShape;
}

interface RawField {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}
interface RawMessage {
  name: string;
  field: RawField[];
  nestedType: RawMessage[];
  enumType: Array<{ name: string; value: Array<{ number: number }> }>;
}
interface RawEnum {
  value: Array<{ number: number }>;
}

/**
 * The message shapes of a descriptor set, for code that must look at requests as bytes (the
 * wire-format check, tests that build malformed requests). Type names are resolved the way protoc
 * resolves them: relative names from the innermost scope outwards.
 */
export class DescriptorIndex {
  private readonly messages = new Map<string, RawMessage>();
  private readonly enums = new Map<string, RawEnum>();
  private readonly shapes = new Map<string, MessageShape>();
  private allMethods: MethodShape[] | undefined;

  constructor(readonly packageDefinition: PackageDefinition) {
    for (const [name, definition] of Object.entries(packageDefinition)) {
      if (!('format' in definition)) continue;
      if (definition.format === 'Protocol Buffer 3 DescriptorProto') this.addMessage(name, definition.type as RawMessage);
      else this.enums.set(name, definition.type as RawEnum);
    }
  }

  private addMessage(fullName: string, message: RawMessage): void {
    this.messages.set(fullName, message);
    for (const nested of message.nestedType ?? []) this.addMessage(`${fullName}.${nested.name}`, nested);
    for (const nested of message.enumType ?? []) this.enums.set(`${fullName}.${nested.name}`, nested);
  }

  /** The full name `typeName` refers to from inside `scope` (a message or service's full name). */
  private resolve(typeName: string, scope: string, known: ReadonlyMap<string, unknown>): string {
    if (typeName.startsWith('.')) return typeName.slice(1);
    const parts = scope.split('.');
    for (let n = parts.length; n >= 0; n--) {
      const candidate = [...parts.slice(0, n), typeName].join('.');
      if (known.has(candidate)) return candidate;
    }
    throw new Error(`descriptor: cannot resolve ${typeName} from ${scope}`);
  }

  /** The shape of the message `fullName` (cached; recursive messages refer to the same object). */
  message(fullName: string): MessageShape {
    const cached = this.shapes.get(fullName);
    if (cached) return cached;
    const raw = this.messages.get(fullName);
    if (!raw) throw new Error(`descriptor: no message ${fullName}`);
    const fields: FieldShape[] = [];
    const shape: MessageShape = { fullName, fields, byNumber: new Map() };
    this.shapes.set(fullName, shape);
    for (const f of raw.field) {
      const field: FieldShape = { name: f.name, number: f.number, type: f.type, repeated: f.label === 'LABEL_REPEATED' };
      if (f.type === 'TYPE_MESSAGE') field.message = this.message(this.resolve(f.typeName, fullName, this.messages));
      if (f.type === 'TYPE_ENUM') field.enumValues = this.enums.get(this.resolve(f.typeName, fullName, this.enums))!.value.map((v) => v.number);
      fields.push(field);
      (shape.byNumber as Map<number, FieldShape>).set(field.number, field);
    }
    return shape;
  }

  /** Every rpc of every service whose full name starts with `prefix`. */
  methods(prefix = ''): MethodShape[] {
    this.allMethods ??= Object.entries(this.packageDefinition).flatMap(([service, definition]) => {
      if ('format' in definition) return [];
      return Object.entries(definition).map(([method, def]) => {
        // The definition names the request by its short name: resolve it from the service's scope.
        const request = this.message(this.resolve((def.requestType.type as RawMessage).name, service, this.messages));
        return { service, method, path: def.path, responseStream: def.responseStream, request };
      });
    });
    return this.allMethods.filter((m) => m.service.startsWith(prefix));
  }

  /** The rpc at `path` (`/package.Service/Method`), if the descriptor set has it. */
  method(path: string): MethodShape | undefined {
    return this.methods().find((m) => m.path === path);
  }
}

let loaded: DescriptorIndex | undefined;

/** The index of gen/descriptor.binpb, the contracts every service serves (read once per process). */
export function meshDescriptor(): DescriptorIndex {
  loaded ??= new DescriptorIndex(loadFileDescriptorSetFromBuffer(readFileSync(repoPath('gen', 'descriptor.binpb'))));
  return loaded;
}
