import { Foundation1764000000000 } from './1764000000000-foundation.js';
import { Agents1764100000000 } from './1764100000000-agents.js';
import { Routes1764500000000 } from './1764500000000-routes.js';
import { Certificates1764600000000 } from './1764600000000-certificates.js';
import { ProxySync1764700000000 } from './1764700000000-proxy-sync.js';
import { Audit1764800000000 } from './1764800000000-audit.js';
import { Deployments1765000000000 } from './1765000000000-deployments.js';

/** Every migration in order. TypeORM runs the ones a database has not seen yet. */
export const migrations = [
  Foundation1764000000000,
  Agents1764100000000,
  Routes1764500000000,
  Certificates1764600000000,
  ProxySync1764700000000,
  Audit1764800000000,
  Deployments1765000000000,
];
