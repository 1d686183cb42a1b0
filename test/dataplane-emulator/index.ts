export { DataplaneEmulator } from './emulator.js';
export { EMULATOR_VERSION } from './operations/information.js';
export { runtimeServerArguments } from './operations/servers.js';
export { configFromYaml, loadConfigFile, type EmulatorConfig, type EmulatorUser } from './config.js';
export { HaproxyControl, parseShowProc, socketCommand, type ProcList } from './haproxy.js';
export { OpenApiDocument, findDocumentPath } from './openapi.js';
