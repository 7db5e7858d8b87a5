/**
 * The ids risk keys features, signals and decisions by, at the gRPC edge and in its consumers
 * alike: every id the other services admit (platform/validate.ts ID: letters, digits and
 * . _ @ + -, so a band whose account or merchant id has a '+' is scored, not refused), and ':'
 * too, which a Redis key holds as well. Never braces (they would break the Cluster hash tag)
 * or spaces.
 */
export const RISK_ID = /^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$/;
