import 'reflect-metadata';
import { progress, writeFigures, type Figures } from './report.js';

/** Each benchmark measures its subject and a baseline in the same run, and returns figures. */
const benchmarks: Record<string, () => Promise<{ run(): Promise<Figures> }>> = {
  eventstore: () => import('./eventstore.js'),
  agents: () => import('./agents.js'),
  propagation: () => import('./propagation.js'),
  replay: () => import('./replay.js'),
  deploy: () => import('./deploy.js'),
};

const requested = process.argv.slice(2);
const names = requested.length > 0 ? requested : Object.keys(benchmarks);
const unknown = names.filter((name) => !benchmarks[name]);
if (unknown.length > 0) {
  console.error(
    `unknown benchmark(s): ${unknown.join(', ')}; available: ${Object.keys(benchmarks).join(', ')}`,
  );
  process.exit(2);
}
for (const name of names) {
  progress(`${name}: starting`);
  const figures = await (await benchmarks[name]!()).run();
  const path = await writeFigures(name, figures);
  console.log(JSON.stringify({ benchmark: name, ...figures }));
  progress(`${name}: written to ${path}`);
}
