/**
 * `bam auth <provider>`: signs this machine in to a Google Drive, Dropbox or OneDrive account with the OAuth 2.0
 * authorization-code flow, PKCE and a loopback redirect (the core's authorizeWithLoopback), and saves the tokens to
 * ~/.backup-manager/<provider>-token.json (mode 0600), where every later command finds and refreshes them. No token
 * is ever printed, logged or put in an error.
 */
import { BackupError, FileTokenStore, authorizeWithLoopback, toBackupError } from '@backup-manager/core-archive';
import { oauthConfigFor, providerNamed, tokenFile } from '../destinations.ts';
import { EXIT } from '../exit-codes.ts';
import type { Runtime } from '../runtime.ts';

export interface AuthFlags {
  port?: string;
}

export async function authCommand(rt: Runtime, name: string, flags: AuthFlags): Promise<number> {
  const provider = providerNamed(name);
  if (provider === undefined) {
    throw new BackupError('INVALID_ARGUMENT', `cannot sign in to ${JSON.stringify(name)}: choose google_drive (or gdrive), dropbox or onedrive`);
  }
  const port = flags.port === undefined ? undefined : Number(flags.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new BackupError('INVALID_ARGUMENT', `--port takes a port number from 1 to 65535, not ${JSON.stringify(flags.port)}`);
  }
  const config = await oauthConfigFor(rt, provider);
  const file = tokenFile(rt, provider);
  const started = Date.now();
  try {
    const tokens = await authorizeWithLoopback(config, {
      // The address is the one thing the person must see, so it is shown with --quiet too.
      print: (message) => {
        rt.streams.stderr.write(message.endsWith('\n') ? message : `${message}\n`);
        const url = /https?:\/\/\S+/.exec(message)?.[0];
        if (url !== undefined) rt.printJson({ type: 'auth-url', provider, url });
      },
      signal: rt.abort.signal,
      ...(port === undefined ? {} : { port }),
    });
    await new FileTokenStore(file).write(tokens);
    rt.logOperation({ operation: 'auth', destination: provider, outcome: 'success', durationMs: Date.now() - started });
    const refreshable = tokens.refreshToken !== undefined;
    rt.printJson({
      type: 'auth',
      provider,
      tokenFile: file,
      refreshable,
      expiresAt: tokens.expiresAt === undefined ? null : new Date(tokens.expiresAt).toISOString(),
    });
    rt.print(`signed in to ${provider}; the sign-in is saved in ${file} (readable only by you)`);
    if (!refreshable) {
      rt.note(`warning: ${provider} gave no refresh token, so this sign-in ends when its access token expires; run \`bam auth ${provider}\` again then`);
    }
    return EXIT.ok;
  } catch (e) {
    const err = toBackupError(e);
    rt.logOperation({
      operation: 'auth', destination: provider, outcome: err.code === 'INTERRUPTED' ? 'interrupted' : 'failure', durationMs: Date.now() - started, errorCode: err.code,
    });
    throw err;
  }
}
