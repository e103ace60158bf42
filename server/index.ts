// `unified-notifications/server`: the standalone server, kept out of the package
// entry so that library users do not load its dependencies (swagger UI, close-with-grace).
export { buildServer, redactUrl } from './build.js'
export { configErrorLine, startServer } from './start.js'
export { ConfigError, configFromEnv, ENV_VARIABLES, legacyAdapterNames, SERVER_DEFAULTS, type EnvVariable, type ServerConfig } from './config.js'
export { checkSqlitePath } from './sqlite-check.js'
export { drainConnections, DRAIN_MS } from './drain.js'
export { developmentSecret, DEFAULT_SECRET_FILE } from './dev-secret.js'
