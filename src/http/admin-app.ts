import type { FastifyInstance } from 'fastify';

/** The Fastify instance route modules get (inside a plugin, so with Fastify's base logger type). */
export type AdminApp = FastifyInstance;
