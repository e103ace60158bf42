// `unified-notifications/server`: the standalone server, kept out of the package
// entry so that library users do not load its dependencies (swagger UI, close-with-grace).
export { buildServer, redactUrl } from './build.js'
export { configFromEnv, legacyAdapterNames, SERVER_DEFAULTS, type ServerConfig } from './config.js'
export { developmentSecret, DEFAULT_SECRET_FILE } from './dev-secret.js'
