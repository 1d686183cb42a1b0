export { DataplaneEmulator, runtimeServerArguments, EMULATOR_VERSION } from './emulator.js';
export { configFromYaml, loadConfigFile, type EmulatorConfig, type EmulatorUser } from './config.js';
export { HaproxyControl, parseShowProc, socketCommand, type ProcList } from './haproxy.js';
export { OpenApiDocument, findDocumentPath } from './openapi.js';
