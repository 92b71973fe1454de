// The CRI wire format: api/cri/v1/api.proto loaded with protobufjs, and grpc-js service
// definitions for RuntimeService and ImageService under runtime.v1 and runtime.v1alpha2
// (v1alpha2's messages are a wire-compatible subset of v1's, so one codec serves both).
import * as fs from 'fs';
import * as path from 'path';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';

export const PROTO_FILE = path.resolve(__dirname, '../../../api/cri/v1/api.proto');
export const CRI_PACKAGES = ['runtime.v1', 'runtime.v1alpha2'] as const;
export type CriPackage = (typeof CRI_PACKAGES)[number];
export type CriServiceName = 'RuntimeService' | 'ImageService';

let root: protobuf.Namespace | undefined;
function ns(): protobuf.Namespace {
  if (!root) root = protobuf.parse(fs.readFileSync(PROTO_FILE, 'utf8'), { keepCase: true }).root.lookup('runtime.v1') as protobuf.Namespace;
  return root;
}

// Decoded messages have every field (defaults on): handlers never test for undefined.
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: Number, bytes: Buffer, defaults: true, arrays: true, objects: true };

export interface Codec<T> {
  encode(msg: unknown): Buffer;
  decode(buf: Buffer): T;
}

export function codec<T>(typeName: string): Codec<T> {
  return typeCodec(ns().lookupType(typeName));
}

/** A reply given as its encoded bytes (see EncodedItems): the codec sends them as they are. */
export const ENCODED = Symbol('skiff.encoded');
export interface Encoded {
  [ENCODED]: Buffer;
}

/**
 * Encoded list items kept between calls while their source's version stays the same.
 * kubelet lists every pod and container each second; only what changed is encoded
 * again, and a reply that is one repeated field is the items' bytes joined.
 */
export class EncodedItems<R> {
  private readonly items = new Map<string, { version: string; bytes: Buffer }>();

  constructor(private readonly encode: (r: R) => Buffer) {}

  /** The reply whose field `field` repeats these items, encoded. `live` tells the ids
   * that still exist: the others are forgotten once the cache outgrows the reply. */
  reply(field: number, list: { id: string; version: string; item: R }[], live: (id: string) => boolean): Encoded {
    return repeatedField(field, this.bytes(list, live));
  }

  /** Each item's encoding, in order: cached unless its version changed (see reply). */
  bytes(list: { id: string; version: string; item: R }[], live: (id: string) => boolean): Buffer[] {
    const out = new Array<Buffer>(list.length);
    for (let i = 0; i < list.length; i++) {
      const { id, version, item } = list[i];
      let e = this.items.get(id);
      if (!e || e.version !== version) this.items.set(id, (e = { version, bytes: this.encode(item) }));
      out[i] = e.bytes;
    }
    if (this.items.size > list.length + 64) for (const id of this.items.keys()) if (!live(id)) this.items.delete(id);
    return out;
  }
}

/** A message whose only field, `field`, repeats these encoded messages. */
export function repeatedField(field: number, items: readonly Buffer[]): Encoded {
  const w = protobuf.Writer.create();
  for (const b of items) w.uint32((field << 3) | 2).bytes(b);
  const bytes = w.finish();
  return { [ENCODED]: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

/** The tag and length that open a length-delimited field (bytes, string, message). */
export function lengthDelimitedHead(field: number, length: number): Uint8Array {
  return protobuf.Writer.create().uint32((field << 3) | 2).uint32(length).finish();
}

/** An int32 field, encoded (a negative value takes ten bytes). */
export function int32Field(field: number, value: number): Uint8Array {
  return protobuf.Writer.create().uint32(field << 3).int32(value).finish();
}

/** The codec of any protobufjs message type (skiff's own API uses it too). */
export function typeCodec<T>(type: protobuf.Type): Codec<T> {
  return {
    encode: (msg) => {
      if ((msg as Partial<Encoded>)?.[ENCODED]) return (msg as Encoded)[ENCODED];
      const bytes = type.encode(type.fromObject(msg as Record<string, unknown>)).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    decode: (buf) => type.toObject(type.decode(buf), TO_OBJECT) as T,
  };
}

/** `value` and everything in it made read-only (byte fields excepted: a Buffer cannot be frozen). */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Requests kept at once by keptDecoder; more starts afresh. */
const KEPT_REQUESTS = 32;

/**
 * A decoder that keeps what it decoded by the request's bytes, read-only, and answers
 * the same bytes with the same object: kubelet sends the same List requests every second,
 * and a kept reply (ReplyCache) then costs neither a decode nor a key built again.
 */
export function keptDecoder<T>(decode: (buf: Buffer) => T, maxBytes = 1024): (buf: Buffer) => T {
  const kept = new Map<string, T>();
  return (buf) => {
    if (buf.length > maxBytes) return decode(buf);
    const key = buf.toString('latin1');
    let req = kept.get(key);
    if (req === undefined) {
      req = deepFreeze(decode(buf));
      if (kept.size >= KEPT_REQUESTS) kept.clear();
      kept.set(key, req);
    }
    return req;
  };
}

/** A grpc-js service definition of one CRI service under one package name. */
export function serviceDefinition(pkg: CriPackage, service: CriServiceName): ServiceDefinition {
  return grpcServiceDefinition(ns(), pkg, service);
}

/** The grpc-js definition of a protobufjs service found in `in_` (methods' types resolved there too). */
export function grpcServiceDefinition(in_: protobuf.Namespace, pkg: string, service: string): ServiceDefinition {
  const svc = in_.lookup(service) as protobuf.Service;
  const def: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const m of svc.methodsArray) {
    const req = typeCodec(in_.lookupType(m.requestType));
    const res = typeCodec(in_.lookupType(m.responseType));
    def[m.name] = {
      path: `/${pkg}.${service}/${m.name}`,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      requestSerialize: req.encode,
      requestDeserialize: req.decode,
      responseSerialize: res.encode,
      responseDeserialize: res.decode,
      originalName: m.name,
    };
  }
  return def;
}

export function methodNames(service: CriServiceName): string[] {
  return (ns().lookup(service) as protobuf.Service).methodsArray.map((m) => m.name);
}
