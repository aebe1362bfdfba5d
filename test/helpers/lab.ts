// A lab for a test file: every service of a world on ephemeral ports (DNS, SMTP, HTTPS), its state in a fresh
// temp directory that stop() removes as well. The directory is the test's own too (a CSV, a Redis dir): the
// lab keeps its state in `dir/lab`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from '../../lab/index.ts';

export interface TestLab extends Lab {
  dir: string;
}

/**
 * @param world a world file, or a world document (written to `dir/world.json`, so it is read as `lab up` reads one)
 * @param tmpPrefix how the temp directory's name starts (`mc-<file>-`), to tell a leftover's test
 */
export async function startTestLab(world: string | object, tmpPrefix: string): Promise<TestLab> {
  const dir = mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
  try {
    let file = world;
    if (typeof world !== 'string') {
      file = path.join(dir, 'world.json');
      writeFileSync(file, JSON.stringify(world));
    }
    const lab = await startLab(file as string, { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir: path.join(dir, 'lab') });
    return {
      ...lab,
      dir,
      async stop() {
        await lab.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
