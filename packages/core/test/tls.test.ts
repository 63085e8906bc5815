import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CertificateExpiredError,
  CertificateHostnameError,
  ClientCertificateError,
  ConfigError,
  TlsError,
  UntrustedCertificateError,
} from '../src/errors.js';
import { classifyTlsError, credentialsFromEnv, readTlsMaterial, resolveTlsOptions } from '../src/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'wharf-core-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('resolveTlsOptions', () => {
  it('takes files from URL parameters, options win, nothing given is undefined', () => {
    const params = new URLSearchParams('ca=/u/ca.pem&cert=/u/c.pem&key=/u/c.key&servername=broker.example');
    expect(resolveTlsOptions('test', params, undefined)).toEqual({
      caFile: '/u/ca.pem',
      certFile: '/u/c.pem',
      keyFile: '/u/c.key',
      servername: 'broker.example',
    });
    expect(resolveTlsOptions('test', params, { caFile: '/o/ca.pem' })?.caFile).toBe('/o/ca.pem');
    expect(resolveTlsOptions('test', new URLSearchParams(), undefined)).toBeUndefined();
  });

  it('a certificate without its key (or the reverse) and bad values are ConfigErrors', () => {
    expect(() => resolveTlsOptions('test', new URLSearchParams('cert=/c.pem'), undefined)).toThrow(ConfigError);
    expect(() => resolveTlsOptions('test', new URLSearchParams(), { keyFile: '/k' })).toThrow(
      /certFile and tls.keyFile/,
    );
    expect(() => resolveTlsOptions('test', new URLSearchParams(), { caFile: '' })).toThrow(/tls.caFile/);
    expect(() =>
      resolveTlsOptions('test', new URLSearchParams(), { rejectUnauthorized: 'no' as unknown as boolean }),
    ).toThrow(/rejectUnauthorized/);
  });
});

describe('readTlsMaterial', () => {
  it('reads the files, verifies by default, sends SNI only for host names', () => {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, 'CA');
    const forIp = readTlsMaterial('test', { caFile: ca }, '127.0.0.1');
    expect(forIp.ca?.[0]?.toString()).toBe('CA');
    expect(forIp.rejectUnauthorized).toBe(true);
    expect(forIp.servername).toBeUndefined();
    expect(readTlsMaterial('test', {}, 'broker.example').servername).toBe('broker.example');
    expect(readTlsMaterial('test', { servername: 'x.example' }, '10.0.0.1').servername).toBe('x.example');
  });

  it('a file that cannot be read is a ConfigError naming it', () => {
    expect(() => readTlsMaterial('test', { caFile: join(dir, 'missing.pem') }, 'h')).toThrow(
      /tls.caFile ".*missing\.pem"/,
    );
  });
});

describe('classifyTlsError', () => {
  const target = { broker: 'Broker at h:1', host: 'h', tls: { caFile: '/ca.pem' } };
  const coded = (code: string, wrapped = false): Error => {
    const error = Object.assign(new Error(code), { code });
    return wrapped ? new Error('connection failed', { cause: error }) : error;
  };

  it.each([
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', UntrustedCertificateError],
    ['SELF_SIGNED_CERT_IN_CHAIN', UntrustedCertificateError],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', UntrustedCertificateError],
    ['ERR_TLS_CERT_ALTNAME_INVALID', CertificateHostnameError],
    ['CERT_HAS_EXPIRED', CertificateExpiredError],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', ClientCertificateError],
  ])('%s (also as a cause) is a %o', (code, type) => {
    for (const wrapped of [false, true]) {
      const error = classifyTlsError('test', coded(code, wrapped), target);
      expect(error).toBeInstanceOf(type);
      expect(error).toBeInstanceOf(TlsError);
    }
  });

  it('a refused certificate alert is "missing" when none was given, "rejected" otherwise', () => {
    const alert = coded('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE');
    expect((classifyTlsError('test', alert, target) as ClientCertificateError).reason).toBe('missing');
    const given = { ...target, tls: { certFile: '/c.pem', keyFile: '/c.key' } };
    expect((classifyTlsError('test', alert, given) as ClientCertificateError).reason).toBe('rejected');
    expect(
      (classifyTlsError('test', coded('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'), given) as ClientCertificateError).reason,
    ).toBe('rejected');
  });

  it('anything else is not a certificate problem', () => {
    expect(classifyTlsError('test', coded('ECONNREFUSED'), target)).toBeUndefined();
    expect(classifyTlsError('test', new Error('boom'), target)).toBeUndefined();
  });
});

describe('credentialsFromEnv', () => {
  it('reads WHARF_BROKER_USERNAME and WHARF_BROKER_PASSWORD, ignoring empty values', () => {
    expect(credentialsFromEnv({ WHARF_BROKER_USERNAME: 'u', WHARF_BROKER_PASSWORD: 'p' })).toEqual({
      username: 'u',
      password: 'p',
    });
    expect(credentialsFromEnv({ WHARF_BROKER_USERNAME: '' })).toEqual({});
  });
});
