/**
 * Tag Storage: map files, general files and SSL certificates on disk, with the reload (or, for a
 * certificate, the runtime update of HAProxy's certificate store) that a change of them needs.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import busboy from 'busboy';
import { hasControlCharacter } from '#contracts';
import type { Json } from '../cfg/objects.js';
import { ApiError, atomicWrite } from '../store.js';
import {
  exists,
  forceReload,
  type EmulatorParts,
  type Operations,
  type Reply,
  type RequestContext,
} from './operation.js';

function storageName(name: string): string {
  if (name === '' || name.includes('/') || name.startsWith('.') || hasControlCharacter(name)) {
    throw new ApiError(400, `invalid file name ${name}`);
  }
  return name;
}

/** The existing file for a storage name (with or without `.map` for maps); 404 when there is none. */
async function storedFile(folder: string, name: string, suffix?: string): Promise<string> {
  const candidates = [join(folder, storageName(name))];
  if (suffix && !name.endsWith(suffix)) candidates.push(join(folder, `${name}${suffix}`));
  for (const candidate of candidates) {
    if (await exists(candidate)) return candidate;
  }
  throw new ApiError(404, `file ${name} does not exist`);
}

/**
 * A change of a file the configuration uses: the reload it needs, as the query asks. `atRuntime` applies
 * it without a reload when HAProxy can (certificates through the runtime API); false: a reload is due.
 */
async function afterFileChange(
  emulator: EmulatorParts,
  context: RequestContext,
  ok: Reply,
  atRuntime?: () => Promise<boolean>,
): Promise<Reply> {
  if (context.query.skip_reload === true) return ok;
  if (context.query.force_reload === true) {
    await forceReload(emulator);
    return ok;
  }
  if (atRuntime && (await atRuntime())) return ok;
  return { ...ok, status: 202, headers: { 'Reload-ID': emulator.reloads.reload() } };
}

/** 409 when a non-comment line of haproxy.cfg mentions the file (dataplaneapi's check). */
function assertUnreferenced(emulator: EmulatorParts, file: string): void {
  const lines = emulator.store.text().split('\n');
  lines.forEach((line, number) => {
    const trimmed = line.trim();
    if (trimmed.includes(file) && !trimmed.startsWith('#')) {
      throw new ApiError(
        409,
        `rejecting attempt to delete file ${file} referenced in haproxy conf at line ${number - 1}: ${trimmed}`,
      );
    }
  });
}

/** The multipart field `file_upload`: its file name and content. */
function fileUpload(context: RequestContext): Promise<{ filename: string; data: Buffer }> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: context.headers });
    } catch (error) {
      reject(new ApiError(400, (error as Error).message));
      return;
    }
    let found: { filename: string; data: Buffer } | undefined;
    parser.on('file', (field, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (field === 'file_upload')
          found = { filename: basename(info.filename ?? ''), data: Buffer.concat(chunks) };
      });
    });
    parser.on('error', (error) => reject(new ApiError(400, (error as Error).message)));
    parser.on('close', () => {
      if (!found || found.filename === '')
        reject(new ApiError(400, 'http: no such file (multipart field file_upload)'));
      else resolve(found);
    });
    parser.end(context.rawBody);
  });
}

/** Certificate facts for the API; a PEM without a certificate and a private key is refused (500, as dataplaneapi). */
function certificateInfo(pem: string): Json {
  const certificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/.exec(pem)?.[0];
  if (!certificate || !key) {
    throw new ApiError(
      500,
      'failed to parse certificate: the PEM must hold a certificate and its private key',
    );
  }
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(certificate);
    createPrivateKey(key);
  } catch (error) {
    throw new ApiError(500, `failed to parse certificate: ${(error as Error).message}`);
  }
  const names = (parsed.subjectAltName ?? '').split(',').map((name) => name.trim());
  return {
    description: 'managed SSL file',
    not_before: new Date(parsed.validFrom).toISOString(),
    not_after: new Date(parsed.validTo).toISOString(),
    issuers: parsed.issuer.split('\n').join(', '),
    subject: parsed.subject.split('\n').join(', '),
    serial: parsed.serialNumber,
    domains: names
      .filter((name) => name.startsWith('DNS:'))
      .map((name) => name.slice(4))
      .join(' '),
    ip_addresses: names
      .filter((name) => name.startsWith('IP Address:'))
      .map((name) => name.slice(11))
      .join(' '),
  };
}

/** new (for a new file) / set / commit ssl cert; false when HAProxy refused any step. */
async function pushCertificate(
  emulator: EmulatorParts,
  file: string,
  pem: string,
  isNew: boolean,
): Promise<boolean> {
  const payload = pem
    .split('\n')
    .filter((line) => line.trim() !== '')
    .join('\n');
  try {
    if (isNew) {
      await emulator.haproxy.stats(
        `new ssl cert ${file}`,
        (answer) => !/new empty certificate store/i.test(answer),
      );
    }
    await emulator.haproxy.stats(
      `set ssl cert ${file} <<\n${payload}\n`,
      (answer) => !/transaction (created|updated)/i.test(answer),
    );
    await emulator.haproxy.stats(`commit ssl cert ${file}`, (answer) => !/success/i.test(answer));
    return true;
  } catch (error) {
    await emulator.haproxy.stats(`abort ssl cert ${file}`).catch(() => undefined);
    emulator.logger.warn('runtime certificate update failed; reloading instead', { file, error });
    return false;
  }
}

const mapFiles: Operations = {
  getAllStorageMapFiles: async (emulator) => {
    const folder = emulator.config.mapsDir;
    const names = (await readdir(folder)).filter((name) => !name.includes('.tmp-')).sort();
    return {
      status: 200,
      body: names.map((name) => ({
        file: join(folder, name),
        storage_name: name,
        description: 'managed map file',
        id: '',
      })),
    };
  },
  createStorageMapFile: async (emulator, context) => {
    const upload = await fileUpload(context);
    const name = storageName(upload.filename.endsWith('.map') ? upload.filename : `${upload.filename}.map`);
    const file = join(emulator.config.mapsDir, name);
    if (await exists(file)) throw new ApiError(409, `file ${name} already exists`);
    await atomicWrite(file, upload.data);
    return {
      status: 201,
      body: {
        file,
        storage_name: name,
        description: 'managed but not loaded map file (no runtime ID)',
        size: upload.data.length,
      },
    };
  },
  getOneStorageMap: async (emulator, context) => {
    const file = await storedFile(emulator.config.mapsDir, context.path.name, '.map');
    return { status: 200, raw: { data: await readFile(file), contentType: 'application/octet-stream' } };
  },
  replaceStorageMapFile: async (emulator, context) => {
    const file = await storedFile(emulator.config.mapsDir, context.path.name, '.map');
    await atomicWrite(file, context.rawBody);
    return afterFileChange(emulator, context, { status: 204 });
  },
  deleteStorageMap: async (emulator, context) => {
    const file = await storedFile(emulator.config.mapsDir, context.path.name, '.map');
    assertUnreferenced(emulator, file);
    await rm(file);
    return { status: 204 };
  },
};

const generalFiles: Operations = {
  createStorageGeneralFile: async (emulator, context) => {
    const upload = await fileUpload(context);
    const name = storageName(upload.filename);
    await mkdir(emulator.config.generalStorageDir, { recursive: true });
    const file = join(emulator.config.generalStorageDir, name);
    if (await exists(file)) throw new ApiError(409, `file ${name} already exists`);
    await atomicWrite(file, upload.data);
    return {
      status: 201,
      body: { file, storage_name: name, description: 'managed general use file', size: upload.data.length },
    };
  },
  getOneStorageGeneralFile: async (emulator, context) => {
    const file = await storedFile(emulator.config.generalStorageDir, context.path.name);
    return { status: 200, raw: { data: await readFile(file), contentType: 'application/octet-stream' } };
  },
  replaceStorageGeneralFile: async (emulator, context) => {
    const file = await storedFile(emulator.config.generalStorageDir, context.path.name);
    const upload = await fileUpload(context);
    await atomicWrite(file, upload.data);
    return afterFileChange(emulator, context, { status: 204 });
  },
};

const certificates: Operations = {
  getAllStorageSSLCertificates: async (emulator) => {
    const folder = emulator.config.sslCertsDir;
    const names = (await readdir(folder)).filter((name) => !name.includes('.tmp-')).sort();
    return {
      status: 200,
      body: names.map((name) => ({
        file: join(folder, name),
        storage_name: name,
        description: 'managed SSL file',
      })),
    };
  },
  getOneStorageSSLCertificate: async (emulator, context) => {
    const file = await storedFile(emulator.config.sslCertsDir, context.path.name);
    const pem = await readFile(file, 'utf8');
    return {
      status: 200,
      body: { ...certificateInfo(pem), file, storage_name: basename(file), size: (await stat(file)).size },
    };
  },
  createStorageSSLCertificate: async (emulator, context) => {
    const upload = await fileUpload(context);
    const name = storageName(upload.filename);
    const file = join(emulator.config.sslCertsDir, name);
    if (await exists(file)) throw new ApiError(409, `file ${name} already exists`);
    const pem = upload.data.toString('utf8');
    const info = certificateInfo(pem);
    await atomicWrite(file, upload.data, 0o600);
    const body = { ...info, file, storage_name: name, size: upload.data.length };
    // Like dataplaneapi: load it into HAProxy's certificate store (new/set/commit ssl cert). That does
    // not attach it to a bind; a bind that loads a directory picks it up at the next reload.
    return afterFileChange(emulator, context, { status: 201, body }, () =>
      pushCertificate(emulator, file, pem, true),
    );
  },
  replaceStorageSSLCertificate: async (emulator, context) => {
    const file = await storedFile(emulator.config.sslCertsDir, context.path.name);
    const pem = context.rawBody.toString('utf8');
    const info = certificateInfo(pem);
    await atomicWrite(file, context.rawBody, 0o600);
    const body = { ...info, file, storage_name: basename(file), size: context.rawBody.length };
    return afterFileChange(emulator, context, { status: 200, body }, () =>
      pushCertificate(emulator, file, pem, false),
    );
  },
  deleteStorageSSLCertificate: async (emulator, context) => {
    const file = await storedFile(emulator.config.sslCertsDir, context.path.name);
    assertUnreferenced(emulator, file);
    await rm(file);
    return afterFileChange(emulator, context, { status: 204 }, async () =>
      /deleted/i.test(await emulator.haproxy.stats(`del ssl cert ${file}`).catch(() => '')),
    );
  },
};

export const storageOperations: Operations = { ...mapFiles, ...generalFiles, ...certificates };
