import { createHash, timingSafeEqual } from 'node:crypto';

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time token check: both sides hashed to 32 bytes, so lengths never leak either. */
export function bearerMatchesToken(presented: string, token: string): boolean {
  const ok = timingSafeEqual(digest(presented), digest(token));
  return ok && presented !== '';
}

/** The Authorization header carries `Bearer <token>`. */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const m = authorization === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
  return bearerMatchesToken(m?.[1] ?? '', token);
}
