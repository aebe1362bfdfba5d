import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../lib/config.ts';
import { smtpOptionsFromConfig } from '../lib/probes/smtp/index.ts';

test('probe options come from the configuration, with the extra CA file read once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'smtp-options-'));
  try {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n');
    const cfg = loadConfig({
      MAILCENSUS_LAB: '1',
      MAILCENSUS_SMTP_PORT: '2525',
      MAILCENSUS_EXTRA_CA: ca,
      MAILCENSUS_CONTACT: 'ops@survey.test',
      MAILCENSUS_EHLO_NAME: 'probe.survey.test',
      MAILCENSUS_RELAY_TEST_DOMAIN: 'Foreign.Example',
      MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '1234',
    });
    const o = smtpOptionsFromConfig(cfg, { host: 'mx.a.test' });
    assert.equal(o.port, 2525);
    assert.equal(o.lab, true);
    assert.equal(o.mailFrom, 'ops@survey.test');
    assert.equal(o.ehloName, 'probe.survey.test');
    assert.equal(o.relayTestDomain, 'foreign.example');
    assert.equal(o.bannerTimeoutMs, 1234);
    assert.equal(o.host, 'mx.a.test');
    assert.deepEqual(o.extraCaPems, ['-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n']);
    assert.deepEqual(smtpOptionsFromConfig(loadConfig({})).extraCaPems, []);
    assert.equal(smtpOptionsFromConfig(loadConfig({})).lab, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
