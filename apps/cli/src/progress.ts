/** A one-line progress bar on stderr (redrawn in place on a terminal, one line per update otherwise). */
export function renderProgress(state: {
  done: number;
  total: number;
  rate: number;
  etaSeconds: number | null;
  label: string;
}): string {
  const width = 30;
  const fraction = state.total > 0 ? Math.min(state.done / state.total, 1) : 0;
  const filled = Math.round(fraction * width);
  const eta = state.etaSeconds === null ? '--' : formatDuration(state.etaSeconds);
  return (
    `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(1).padStart(5)}% ` +
    `${state.done.toLocaleString('en-US')}/${state.total.toLocaleString('en-US')} ` +
    `${state.rate.toLocaleString('en-US')} events/s ETA ${eta} ${state.label}`
  );
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`;
}

export function drawProgress(line: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\u001b[2K${line}`);
  else process.stderr.write(`${line}\n`);
}

export function endProgress(): void {
  if (process.stderr.isTTY) process.stderr.write('\n');
}
