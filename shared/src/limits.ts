/** Input limits. Documented in README.md (Limits); change both together. */
export const limits = {
  /** Sum of the byte lengths of every value of one secret. */
  maxSecretBytes: 1024 * 1024,
  maxKeysPerSecret: 100,
  maxNameLength: 253,
  maxKeyLength: 253,
  maxLabels: 64,
  maxDescriptionLength: 1024,
  maxPathLength: 1024,
  maxBatchItems: 500,
  maxListLimit: 1000,
  defaultListLimit: 100,
  maxIdempotencyKeyLength: 128,
  /** Largest gRPC message either end takes or sends (daemon and clients alike). */
  maxMessageBytes: 8 * 1024 * 1024,
} as const;
