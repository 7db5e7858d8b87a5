import {
  Metadata,
  Server,
  ServerCredentials,
  status,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type ServiceError,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { trace } from '@opentelemetry/api';
import { HealthImplementation } from 'grpc-health-check';
import { DomainError, DownstreamRefusal, PermissionDenied, REASON_KEY, reasonOf, Unavailable } from '../errors';
import { serverCredentials, type TlsConfig } from './credentials';
import { meshDescriptor } from './descriptor';
import { rememberPeerCertificates } from './peer-certificate';
import { guardRequest, strictDeserializer } from './request-guard';
import type { Logger } from '../log';
import { isRedisUnavailable } from '../redis';
import { ATTR } from '../telemetry/attributes';
import { recordRpc } from '../telemetry/metrics';

/** What a handler knows about the call besides its request. */
export interface CallContext {
  /** Full method path, e.g. /wristpay.risk.v1.RiskService/Score. */
  method: string;
  /** The caller's identity from its mTLS client certificate (CN), or null on a plaintext listener. */
  caller: string | null;
  metadata: Metadata;
  /**
   * When this call must be answered by: the caller's deadline, capped by the server's maximum.
   * A server stream is not capped (it lasts until the caller cancels): its caller's deadline, or
   * the far future when it set none.
   */
  deadline: Date;
  /** Aborted when the caller cancels, the deadline passes, or (a stream) the server shuts down. */
  signal: AbortSignal;
}

export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

/**
 * Sends one message of a server stream. It resolves once the message is handed to the transport
 * (waiting for 'drain' when the client reads slower than the handler writes), and rejects with
 * the call's abort reason once the call is cancelled, past its deadline or cut by a shutdown.
 */
export type Send<Res> = (message: Res) => Promise<void>;

/**
 * A server-streaming handler: it sends with `send` and the stream ends with OK when it resolves;
 * a throw ends it with the mapped status (toServiceError). It should stop when `ctx.signal` aborts.
 */
export type ServerStreamingHandler<Req, Res> = (request: Req, ctx: CallContext, send: Send<Res>) => Promise<void>;

/** A service implementation as plain async functions, typed from the ts-proto server interface. */
export type Handlers<S> = {
  // `string extends K` drops the index signature ts-proto's server interfaces inherit.
  [K in keyof S as string extends K ? never : K]: S[K] extends handleUnaryCall<infer Req, infer Res>
    ? UnaryHandler<Req, Res>
    : S[K] extends handleServerStreamingCall<infer Req, infer Res>
      ? ServerStreamingHandler<Req, Res>
      : never;
};

/**
 * Who may call each method of a service: every method has an entry (the type requires it), an
 * entry lists caller identities (mTLS certificate CNs), and one ending in `*` admits every
 * identity with that prefix (`merchant.*`). Deny by default: a method without an entry, an
 * empty entry, a caller not listed, or a call without an identity (plaintext) is refused with
 * PERMISSION_DENIED before the handler runs.
 */
export type CallerPolicy<S> = { readonly [K in keyof Handlers<S>]-?: readonly string[] };

/**
 * What a server knows of a service before its handlers exist: which methods it has and who may
 * call them. A server listens with contracts only while the service waits for its dependencies
 * (GrpcServer.install gives the handlers later).
 */
export interface ServiceContract<S> {
  /** The ts-proto service definition, e.g. RiskServiceService. */
  definition: ServiceDefinition<S & UntypedServiceImplementation>;
  /** The service's caller policy (services/<name>/src/policy.ts). */
  allowedCallers: CallerPolicy<S>;
}

export interface ServiceRegistration<S> extends ServiceContract<S> {
  handlers: Handlers<S>;
}

/** Binds a registration, keeping handler and definition types tied together. */
export function register<S>(registration: ServiceRegistration<S>): ServiceRegistration<unknown> {
  return registration as ServiceRegistration<unknown>;
}

/** Binds a contract, keeping policy and definition types tied together. */
export function contract<S>(contract: ServiceContract<S>): ServiceContract<unknown> {
  return contract as ServiceContract<unknown>;
}

/** Why a call is refused while the service is still waiting for its dependencies: retry shortly. */
export class ServiceStarting extends Unavailable {
  constructor(service: string) {
    super(`${service} is starting (waiting for its database, Redis or NATS); retry shortly`);
  }
}

/** The listener settings every service reads (platform/config.ts serverEnv). */
export interface ServerConfig extends TlsConfig {
  GRPC_MAX_CALL_MS: number;
  HEALTH_PORT: number;
}

export interface GrpcServerOptions {
  service: string;
  log: Logger;
  credentials: ServerCredentials;
  /** Deadline applied to calls that arrive without one, and the cap on those that do. */
  maxCallMs: number;
  /**
   * A second, plaintext port that serves only grpc.health.v1, for the kubelet's native gRPC
   * probes, which cannot present a client certificate to the mTLS port. 0 or unset: none.
   */
  healthPort?: number;
  /**
   * The services this server serves. A registration serves at once; a contract alone listens
   * NOT_SERVING and answers UNAVAILABLE (ServiceStarting) until `install` gives its handlers.
   */
  services: Array<ServiceRegistration<unknown> | ServiceContract<unknown>>;
  /**
   * How long a server stream lives before the server ends it with UNAVAILABLE ("resume the
   * stream"), plus up to 10% jitter so a crowd of clients does not come back at once. Default
   * STREAM_MAX_MS; it must stay under the connection's grace (see GrpcServer.server).
   */
  streamMaxMs?: number;
}

const MAX_CONNECTION_AGE_MS = 5 * 60_000;

/**
 * The grpc.health.v1 service name that answers SERVING as soon as the server listens: the process
 * is up and its event loop answers. Liveness and startup probes ask for it; readiness asks for ''
 * (the whole server), which stays NOT_SERVING while the service waits for its dependencies, so a
 * pod waiting for its database is kept out of the endpoints without being restarted.
 */
export const LIVENESS_SERVICE = 'liveness';
/** Default lifetime of one server stream (GrpcServerOptions.streamMaxMs). */
export const STREAM_MAX_MS = 4 * 60_000;

/**
 * Maps anything thrown by a handler to a gRPC status. Domain errors keep their code and
 * message; anything else is INTERNAL with a generic message (the stack goes to the log only).
 */
export function toServiceError(err: unknown, log: Logger, method: string): Partial<ServiceError> {
  if (err instanceof DomainError) {
    if (!err.reason) return { code: err.code, details: err.message, message: err.message };
    const metadata = new Metadata();
    metadata.set(REASON_KEY, err.reason);
    return { code: err.code, details: err.message, message: err.message, metadata };
  }
  if (err instanceof DeadlineExceeded) return { code: status.DEADLINE_EXCEEDED, details: err.message };
  const code = (err as Partial<ServiceError>)?.code;
  if (isConnectionFailure(err) || isRedisUnavailable(err)) {
    log.warn({ method, cause: (err as { code?: unknown }).code ?? (err as Error).message }, 'storage unavailable');
    return { code: status.UNAVAILABLE, details: 'storage is unavailable; retry later' };
  }
  if (code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED || code === status.RESOURCE_EXHAUSTED) {
    // A downstream dependency failed transiently: say so, without its internals.
    return { code: status.UNAVAILABLE, details: 'a dependency is unavailable; retry later' };
  }
  if (isDownstreamRefusal(err)) {
    // A service this one called refused the request for a reason the caller can act on: the
    // caller gets that status and message (services word them for callers, without secrets).
    const relayed = relayRefusalOf(err);
    return toServiceError(relayed, log, method);
  }
  log.error({ err, method }, 'unhandled error in handler');
  return { code: status.INTERNAL, details: 'internal error' };
}

class DeadlineExceeded extends Error {}

/** Why open server streams end when the server shuts down: UNAVAILABLE, so clients resume on another replica. */
export class ServerShuttingDown extends Unavailable {
  constructor() {
    super('the server is shutting down; resume the stream');
  }
}

/** Why a server stream ends after its lifetime (GrpcServerOptions.streamMaxMs): UNAVAILABLE, so the client resumes. */
export class StreamLifetimeEnded extends Unavailable {
  constructor() {
    super('the stream reached its maximum lifetime; resume the stream');
  }
}

// What a downstream gRPC client call's failure looks like (a ServiceError with trailers).
const RELAYED: ReadonlySet<status> = new Set([
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.FAILED_PRECONDITION,
  status.ALREADY_EXISTS,
  status.OUT_OF_RANGE,
  status.PERMISSION_DENIED,
  status.UNAUTHENTICATED,
]);
function isDownstreamRefusal(err: unknown): err is ServiceError {
  const e = err as Partial<ServiceError>;
  return typeof e?.code === 'number' && RELAYED.has(e.code) && typeof e.details === 'string' && e.metadata instanceof Metadata;
}
const relayRefusalOf = (err: ServiceError) => new DownstreamRefusal(err.code, err.details, reasonOf(err));

// Socket errors, and PostgreSQL's connection-exception (08xxx), insufficient-resources (53xxx) and
// operator-intervention (57Pxx) classes: the database is down, full or restarting, which a caller
// may retry; not a bug (INTERNAL).
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND']);
function isConnectionFailure(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  // node-postgres reports a connection lost mid-query without a code, by these messages only.
  if (typeof message === 'string' && /^Connection terminated( unexpectedly| due to connection timeout)?$/.test(message)) return true;
  // pg-pool, when no connection could be had within connectionTimeoutMillis (platform/db.ts).
  if (message === 'timeout exceeded when trying to connect') return true;
  // 53xxx: insufficient resources (too many connections, out of memory or disk): retry later.
  return typeof code === 'string' && (CONNECTION_CODES.has(code) || /^08...$/.test(code) || /^57P0[123]$/.test(code) || /^53...$/.test(code));
}

/**
 * A gRPC server with what every WristPay service needs: grpc.health.v1, server reflection,
 * error mapping, a deadline on every call, per-method caller policies (from the mTLS identity,
 * deny by default), the request guard (request-guard.ts) and a graceful drain.
 */
export class GrpcServer {
  // A maximum connection age makes long-lived client channels reconnect, so replicas added by
  // an autoscaler receive traffic instead of idling behind established connections. After the
  // GOAWAY, grpc-js destroys the connection when the grace runs out, with whatever calls are
  // still open on it: the grace is longer than any server stream lives (streamMaxMs plus its
  // jitter), so a stream is always ended by its own lifetime, with a status saying to resume,
  // rather than cut with the connection. Unary calls are capped far below it (maxCallMs).
  readonly server = new Server({
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.max_connection_age_ms': MAX_CONNECTION_AGE_MS,
    'grpc.max_connection_age_grace_ms': STREAM_MAX_MS * 1.1 + 30_000,
  });
  private readonly healthServer = new Server();
  readonly health: HealthImplementation;
  private inFlight = 0;
  /** Open server streams, each by the function that ends it (shutdown ends them all). */
  private readonly streams = new Set<() => void>();
  private shuttingDown = false;
  private shutdownDone: Promise<void> | undefined;
  private listening = false;
  /** Each service's handlers by method name, once installed; a call to a service not in here is answered ServiceStarting. */
  private readonly installed = new Map<string, Record<string, UnaryHandler<unknown, unknown> | ServerStreamingHandler<unknown, unknown>>>();
  private readonly contracts = new Map<string, ServiceContract<unknown>>();

  /** The usual way to build one: credentials, call cap and health port from the service's config. */
  static fromConfig(config: ServerConfig, options: { service: string; log: Logger; services: GrpcServerOptions['services'] }): GrpcServer {
    return new GrpcServer({ ...options, credentials: serverCredentials(config), maxCallMs: config.GRPC_MAX_CALL_MS, healthPort: config.HEALTH_PORT });
  }

  constructor(private readonly options: GrpcServerOptions) {
    rememberPeerCertificates();
    const names = options.services.map((s) => serviceName(s.definition));
    this.health = new HealthImplementation(Object.fromEntries(['', LIVENESS_SERVICE, ...names].map((n) => [n, 'NOT_SERVING' as const])));
    this.health.addToServer(this.server);
    for (const service of options.services) this.addService(service);
    this.install(options.services.filter((s): s is ServiceRegistration<unknown> => 'handlers' in s));
  }

  /**
   * Gives the handlers of services declared by contract (their dependencies are up now). Once
   * every declared service has its handlers, a listening server turns SERVING.
   */
  install(registrations: ServiceRegistration<unknown>[]): void {
    for (const registration of registrations) {
      const name = serviceName(registration.definition);
      const declared = this.contracts.get(name);
      if (!declared) throw new Error(`${this.options.service}: ${name} was not declared when the server was built`);
      if (declared.allowedCallers !== registration.allowedCallers && JSON.stringify(declared.allowedCallers) !== JSON.stringify(registration.allowedCallers)) {
        throw new Error(`${this.options.service}: ${name} is installed with another caller policy than it was declared with`);
      }
      const handlers = registration.handlers as Record<string, UnaryHandler<unknown, unknown> | ServerStreamingHandler<unknown, unknown>>;
      for (const [method, def] of Object.entries(registration.definition)) {
        if (!handlers[method]) throw new Error(`${this.options.service}: no handler for ${def.path}`);
      }
      this.installed.set(name, handlers);
    }
    if (this.listening && this.ready) this.setServing(true);
  }

  /** True once every declared service has its handlers. */
  get ready(): boolean {
    return this.installed.size === this.contracts.size;
  }

  /** Binds and starts serving; resolves with the bound port (useful with port 0 in tests). */
  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    const bound = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:${port}`, this.options.credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
    if (this.options.healthPort) {
      this.health.addToServer(this.healthServer);
      await new Promise<number>((resolve, reject) =>
        this.healthServer.bindAsync(`${host}:${this.options.healthPort}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
    }
    this.listening = true;
    this.health.setStatus(LIVENESS_SERVICE, 'SERVING');
    // Reflection indexes the whole mesh's descriptors (0.3-0.8 s of CPU): built after the bind, so
    // a restarted replica answers health and, once its dependencies answer, payments without
    // waiting for a debugging aid. A reflection call in that first moment gets UNIMPLEMENTED.
    setImmediate(() => {
      // Only what this server serves: the mesh descriptor holds every service's.
      if (!this.shuttingDown) new ReflectionService(meshDescriptor().packageDefinition, { services: [...this.contracts.keys()] }).addToServer(this.server);
    });
    // A server still waiting for its dependencies listens NOT_SERVING: the kubelet's readiness
    // probe keeps traffic away and its liveness probe (the process answers) leaves it running.
    if (this.ready) this.setServing(true);
    return bound;
  }

  setServing(serving: boolean): void {
    const state = serving ? 'SERVING' : 'NOT_SERVING';
    for (const name of ['', ...this.options.services.map((s) => serviceName(s.definition))]) this.health.setStatus(name, state);
  }

  /**
   * Stops taking new calls, lets in-flight calls finish for up to `graceMs`, then cuts the rest.
   * Health turns NOT_SERVING first so load balancers stop sending traffic. Open server streams
   * never finish on their own, so they are ended at once with UNAVAILABLE (their clients resume
   * elsewhere) instead of holding the drain until the grace period runs out.
   */
  shutdown(graceMs: number): Promise<void> {
    // Once: a service registers the drain twice (see platform/service.ts listenEarly).
    this.shutdownDone ??= this.drain(graceMs);
    return this.shutdownDone;
  }

  private async drain(graceMs: number): Promise<void> {
    this.setServing(false);
    this.shuttingDown = true;
    if (this.streams.size) this.options.log.info({ streams: this.streams.size }, 'ending open streams with UNAVAILABLE for shutdown');
    for (const end of [...this.streams]) end();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.options.log.warn({ inFlight: this.inFlight }, 'drain timed out; cancelling remaining calls');
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.healthServer.forceShutdown();
  }

  private addService(service: ServiceContract<unknown>): void {
    const implementation: UntypedServiceImplementation = {};
    const definition: Record<string, ServiceDefinition[string]> = {};
    const name = serviceName(service.definition);
    this.contracts.set(name, service);
    for (const [method, def] of Object.entries(service.definition)) {
      // A method the policy does not name is refused to everyone (an empty list).
      const allowed = (service.allowedCallers as Record<string, readonly string[] | undefined>)[method] ?? [];
      if (def.requestStream) throw new Error(`${this.options.service}: ${def.path} streams requests, which GrpcServer does not support`);
      // Looked up per call: the handlers of a service declared by contract arrive later (install).
      const handler = () => this.installed.get(name)?.[method] ?? this.starting();
      implementation[method] = def.responseStream ? this.wrapServerStreaming(def.path, handler as () => ServerStreamingHandler<unknown, unknown>, allowed) : this.wrapUnary(def.path, handler as () => UnaryHandler<unknown, unknown>, allowed);
      // Bytes that are no well-formed request reach the wrapper as an UndecodableRequest: the
      // caller check answers first, then the guard refuses them as INVALID_ARGUMENT.
      definition[method] = { ...def, requestDeserialize: strictDeserializer(def.requestDeserialize, meshDescriptor().method(def.path)?.request) };
    }
    this.server.addService(definition, implementation);
  }

  private starting(): never {
    throw new ServiceStarting(this.options.service);
  }

  private wrapUnary(method: string, handler: () => UnaryHandler<unknown, unknown>, allowed: readonly string[]): handleUnaryCall<unknown, unknown> {
    const { log, maxCallMs } = this.options;
    return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      this.inFlight++;
      const started = performance.now();
      const caller = callerIdentity(call);
      const callerDeadline = call.getDeadline();
      const cap = Date.now() + maxCallMs;
      const deadlineMs = Math.min(typeof callerDeadline === 'number' ? callerDeadline : callerDeadline.getTime(), cap);
      const abort = new AbortController();
      let answered = false;
      const timer = setTimeout(() => abort.abort(new DeadlineExceeded(`${method} exceeded its deadline`)), Math.max(0, deadlineMs - Date.now()));
      // grpc-js also reports 'cancelled' when the stream closes after the answer: no error (and its stack) for that.
      call.on('cancelled', () => answered || abort.abort(new DeadlineExceeded('cancelled by the caller')));
      if (caller) trace.getActiveSpan()?.setAttribute(ATTR.rpcCaller, caller);
      const ctx: CallContext = { method, caller, metadata: call.metadata, deadline: new Date(deadlineMs), signal: abort.signal };
      const work = (async () => {
        checkCaller(method, caller, allowed);
        guardRequest(call.request);
        return handler()(call.request, ctx);
      })();
      const timeout = new Promise<never>((_, reject) => abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true }));
      Promise.race([work, timeout])
        .then(
          (response) => {
            recordRpc(method, status.OK, (performance.now() - started) / 1000);
            callback(null, response);
          },
          (err) => {
            const mapped = toServiceError(err, log, method);
            recordRpc(method, mapped.code ?? status.UNKNOWN, (performance.now() - started) / 1000);
            callback(mapped as ServiceError);
          },
        )
        .finally(() => {
          answered = true;
          clearTimeout(timer);
          this.inFlight--;
        });
    };
  }

  private wrapServerStreaming(method: string, handler: () => ServerStreamingHandler<unknown, unknown>, allowed: readonly string[]): handleServerStreamingCall<unknown, unknown> {
    const { log } = this.options;
    return (call: ServerWritableStream<unknown, unknown>) => {
      this.inFlight++;
      const started = Date.now();
      const caller = callerIdentity(call);
      const callerDeadline = call.getDeadline();
      const deadlineMs = typeof callerDeadline === 'number' ? callerDeadline : callerDeadline.getTime();
      const abort = new AbortController();
      // No deadline from the caller is Infinity, and one past the stream's lifetime never comes
      // first: no timer for either (setTimeout past 2^31-1 ms would overflow and fire at once).
      const untilDeadline = deadlineMs - Date.now();
      const timer =
        untilDeadline < STREAM_MAX_MS * 2 ? setTimeout(() => abort.abort(new DeadlineExceeded(`${method} exceeded its deadline`)), Math.max(0, untilDeadline)) : undefined;
      call.on('cancelled', () => abort.abort(new DeadlineExceeded('cancelled by the caller')));
      const maxMs = Math.min(this.options.streamMaxMs ?? STREAM_MAX_MS, STREAM_MAX_MS);
      const lifetime = setTimeout(() => abort.abort(new StreamLifetimeEnded()), maxMs + Math.random() * maxMs * 0.1);
      const endForShutdown = () => abort.abort(new ServerShuttingDown());
      this.streams.add(endForShutdown);
      if (this.shuttingDown) endForShutdown();
      if (caller) trace.getActiveSpan()?.setAttribute(ATTR.rpcCaller, caller);
      const ctx: CallContext = { method, caller, metadata: call.metadata, deadline: new Date(Number.isFinite(deadlineMs) ? deadlineMs : 8.64e15), signal: abort.signal };
      const send: Send<unknown> = (message) => {
        if (abort.signal.aborted) return Promise.reject(abort.signal.reason);
        if (call.write(message)) return Promise.resolve();
        // The transport buffer is full: wait until the client has read enough, or the call ends.
        return new Promise<void>((resolve, reject) => {
          const onAbort = () => {
            call.off('drain', onDrain);
            reject(abort.signal.reason);
          };
          const onDrain = () => {
            abort.signal.removeEventListener('abort', onAbort);
            resolve();
          };
          call.once('drain', onDrain);
          abort.signal.addEventListener('abort', onAbort, { once: true });
        });
      };
      const work = (async () => {
        checkCaller(method, caller, allowed);
        guardRequest(call.request);
        await handler()(call.request, ctx, send);
      })();
      const ended = new Promise<never>((_, reject) => {
        if (abort.signal.aborted) reject(abort.signal.reason);
        abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true });
      });
      // The handler may still be running when the call has ended (it sees the abort at its next
      // send or wait); whatever it throws then is not for anyone.
      work.catch(() => undefined);
      Promise.race([work, ended])
        .then(
          () => {
            call.end();
            recordRpc(method, status.OK, (Date.now() - started) / 1000);
            log.debug({ method, caller, ms: Date.now() - started }, 'stream ended');
          },
          (err: unknown) => {
            if (call.cancelled) {
              recordRpc(method, status.CANCELLED, (Date.now() - started) / 1000);
              log.debug({ method, caller, ms: Date.now() - started }, 'stream cancelled by the caller');
              return;
            }
            if (err instanceof ServerShuttingDown) log.info({ method, caller }, 'stream ended for shutdown');
            const mapped = toServiceError(err, log, method);
            recordRpc(method, mapped.code ?? status.UNKNOWN, (Date.now() - started) / 1000);
            // 'error' makes grpc-js send the status and end the call (and the server span records it).
            call.emit('error', mapped);
          },
        )
        .finally(() => {
          if (timer) clearTimeout(timer);
          clearTimeout(lifetime);
          this.streams.delete(endForShutdown);
          this.inFlight--;
        });
    };
  }
}

/** True when `caller` is one of `allowed`: an exact identity, or a prefix ending in `*` (`merchant.*`). */
export function callerAllowed(caller: string, allowed: readonly string[]): boolean {
  return allowed.some((entry) => (entry.endsWith('*') ? caller.startsWith(entry.slice(0, -1)) && caller.length > entry.length - 1 : caller === entry));
}

function checkCaller(method: string, caller: string | null, allowed: readonly string[]): void {
  if (!caller || !callerAllowed(caller, allowed)) {
    const who = allowed.length ? `may only be called by ${allowed.join(', ')}` : 'may be called by no one';
    throw new PermissionDenied(`${method.split('/').pop()} ${who}${caller ? ` (caller: ${caller})` : ' over mTLS'}`);
  }
}

function serviceName(definition: ServiceDefinition): string {
  const first = Object.values(definition)[0];
  return first ? first.path.split('/')[1]! : '';
}

/** The CN of the verified client certificate; null when the listener is plaintext. */
function callerIdentity(call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>): string | null {
  const cert = call.getAuthContext?.().sslPeerCertificate;
  const cn = cert?.subject?.CN;
  return typeof cn === 'string' && cn ? cn : null;
}
