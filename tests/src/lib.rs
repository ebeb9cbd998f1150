//! Cross-service journeys live in `journeys/`: they start the real service binaries as
//! an operator would (configuration from the environment, SIGTERM to stop) against
//! private Postgres and NATS, and consume their events the way other services do.
